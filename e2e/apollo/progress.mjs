// Live campaign progress through graphql-ws's official client, as a web app subscribes.
//
//   GRAPHQL_WS_URL=ws://127.0.0.1:8000/graphql TOKEN=... OTHER_TOKEN=... CAMPAIGN_ID=... \
//     node e2e/apollo/progress.mjs
//
// Three clients over the graphql-transport-ws protocol, the token in connection_init's payload:
//   owner   subscribes to campaignProgress(id) and collects every value until the server
//           completes the subscription (the campaign ended);
//   other   another organization's token on the same id: the subscription ends with NOT_FOUND;
//   forged  a token signed with the wrong key: the server closes the socket with 4403.
// Prints one JSON line {"values": [...], "other": {...}, "forged": {...}} for the caller to check.

import { createClient } from "graphql-ws";
import WebSocket from "ws";

const QUERY = `subscription Progress($id: ID!) {
  campaignProgress(id: $id) {
    status
    stats { total sent failed skipped unknown successRate }
    nextSendAt
  }
}`;
const DEADLINE_MS = 60_000;

function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`e2e/apollo/progress: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

/** Subscribes with `token`; resolves with what happened (values, errors, or a close code). */
function subscribe(url, token, id) {
  return new Promise((resolve) => {
    const values = [];
    let closeCode = null;
    const client = createClient({
      url,
      webSocketImpl: WebSocket,
      connectionParams: { Authorization: `Bearer ${token}` },
      retryAttempts: 0,
      lazy: true,
      on: {
        closed: (event) => {
          closeCode = event?.code ?? closeCode;
        },
      },
    });
    const finish = (outcome) => {
      client.dispose();
      resolve({ values, closeCode, ...outcome });
    };
    client.subscribe(
      { query: QUERY, variables: { id } },
      {
        next: (result) => {
          if (result.errors) values.push({ errors: result.errors });
          else values.push(result.data.campaignProgress);
        },
        error: (error) => {
          // A GraphQL error list, or the CloseEvent of a refused connection.
          if (Array.isArray(error)) finish({ errors: error });
          else finish({ closed: error?.code ?? closeCode, reason: error?.reason ?? null });
        },
        complete: () => finish({ completed: true }),
      },
    );
  });
}

const url = env("GRAPHQL_WS_URL");
const id = env("CAMPAIGN_ID");
const timer = setTimeout(() => {
  console.error(`e2e/apollo/progress: no end within ${DEADLINE_MS} ms`);
  process.exit(1);
}, DEADLINE_MS);
const [owner, other, forged] = await Promise.all([
  subscribe(url, env("TOKEN"), id),
  subscribe(url, env("OTHER_TOKEN"), id),
  subscribe(url, env("FORGED_TOKEN"), id),
]);
clearTimeout(timer);
console.log(JSON.stringify({ values: owner.values, completed: owner.completed ?? false, other, forged }));

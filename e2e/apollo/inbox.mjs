// A rep's live inbox with the official @apollo/client, as a web app keeps one open.
//
//   GRAPHQL_URL=http://127.0.0.1:8000/graphql GRAPHQL_WS_URL=ws://127.0.0.1:8000/graphql \
//     TOKEN=... PHONE=+12122000000 BODY="yes, call me" node e2e/apollo/inbox.mjs
//
// One ApolloClient: queries over HttpLink, subscriptions over GraphQLWsLink (graphql-ws, the
// token in connection_init's payload), split by operation type. It watches `conversations`,
// adds `messageReceived` to it with subscribeToMore (a new conversation goes on top, as a web
// app's inbox does), waits for the message the caller's signed webhook brings (from PHONE, with
// BODY), then reads the inbox from the cache alone and again from the network. Prints one JSON
// line for the caller to check; exits non-zero on a failure or after DEADLINE_MS.

import assert from "node:assert/strict";

import { ApolloClient, HttpLink, InMemoryCache, gql, split } from "@apollo/client/core/index.js";
import { loadDevMessages, loadErrorMessages } from "@apollo/client/dev/index.js";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions/index.js";
import { getMainDefinition } from "@apollo/client/utilities/index.js";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

loadDevMessages();
loadErrorMessages();

const DEADLINE_MS = 60_000;

function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`e2e/apollo/inbox: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const MESSAGE = gql`
  fragment InboxMessage on Message {
    id
    direction
    body
    from
    createdAt
    contact { id phoneNumber }
  }
`;
const INBOX = gql`
  query Inbox {
    conversations(first: 10) {
      edges { node { contact { id phoneNumber } lastMessage { ...InboxMessage } unreadCount } }
    }
  }
  ${MESSAGE}
`;
const RECEIVED = gql`
  subscription Received {
    messageReceived { ...InboxMessage }
  }
  ${MESSAGE}
`;

const token = env("TOKEN");
const phone = env("PHONE");
const body = env("BODY");
const timer = setTimeout(() => {
  console.error(`e2e/apollo/inbox: no message within ${DEADLINE_MS} ms`);
  process.exit(1);
}, DEADLINE_MS);

const socket = createClient({
  url: env("GRAPHQL_WS_URL"),
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  retryAttempts: 0,
});
const link = split(
  ({ query }) => {
    const definition = getMainDefinition(query);
    return definition.kind === "OperationDefinition" && definition.operation === "subscription";
  },
  new GraphQLWsLink(socket),
  new HttpLink({ uri: env("GRAPHQL_URL"), headers: { Authorization: `Bearer ${token}` } }),
);
const client = new ApolloClient({ link, cache: new InMemoryCache() });

const inbox = client.watchQuery({ query: INBOX });
const first = await new Promise((resolve, reject) => {
  const watching = inbox.subscribe({
    next: (result) => {
      if (!result.loading) {
        watching.unsubscribe();
        resolve(result.data);
      }
    },
    error: reject,
  });
});
assert.deepEqual(first.conversations.edges, [], "the inbox starts empty");

// A new message becomes its conversation's lastMessage, on top of the cached inbox.
const arrived = new Promise((resolve, reject) => {
  inbox.subscribeToMore({
    document: RECEIVED,
    updateQuery: (previous, { subscriptionData }) => {
      const message = subscriptionData.data.messageReceived;
      const others = previous.conversations.edges.filter(
        (edge) => edge.node.contact.id !== message.contact.id,
      );
      const mine = previous.conversations.edges.find(
        (edge) => edge.node.contact.id === message.contact.id,
      );
      const node = {
        __typename: "Conversation",
        contact: message.contact,
        lastMessage: message,
        unreadCount: (mine?.node.unreadCount ?? 0) + 1,
      };
      resolve(message);
      return {
        ...previous,
        conversations: {
          ...previous.conversations,
          edges: [{ __typename: "ConversationEdge", node }, ...others],
        },
      };
    },
    onError: reject,
  });
});
const keepWatching = inbox.subscribe({ next: () => {} }); // keeps the subscription open
const message = await arrived;
clearTimeout(timer);
assert.equal(message.body, body);
assert.equal(message.from, phone);
assert.equal(message.direction, "INBOUND");

// The cache alone answers the inbox, and the server agrees with it.
const cached = client.readQuery({ query: INBOX });
const fromServer = (await client.query({ query: INBOX, fetchPolicy: "network-only" })).data;
const cachedMessage = client.readFragment({
  id: client.cache.identify(message),
  fragment: MESSAGE,
});
keepWatching.unsubscribe();
await socket.dispose();
await client.clearStore();
client.stop();
const summary = (data) =>
  data.conversations.edges.map(({ node }) => ({
    phone: node.contact.phoneNumber,
    messageId: node.lastMessage.id,
    body: node.lastMessage.body,
    unreadCount: node.unreadCount,
  }));
console.log(
  JSON.stringify({
    received: { id: message.id, body: message.body, from: message.from },
    cached: summary(cached),
    server: summary(fromServer),
    cachedMessage: cachedMessage && { id: cachedMessage.id, body: cachedMessage.body },
  }),
);

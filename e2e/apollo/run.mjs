// End-to-end check of the GraphQL API with the official @apollo/client, as a web app uses it.
//
//   GRAPHQL_URL=http://127.0.0.1:8000/graphql TOKEN=... [OTHER_TOKEN=...] node e2e/apollo/run.mjs
//
// Two passes, each with a fresh ApolloClient and InMemoryCache:
//   batch      setContext (Authorization) -> BatchHttpLink (batchMax 5, batchInterval 10 ms)
//   persisted  setContext -> createPersistedQueryLink({ sha256, useGETForHashedQueries }) -> HttpLink
// Each pass creates campaigns (one createCampaign per request: the server's rule), pages through
// `campaigns` with fetchMore into one merged cache field, reads `campaign(id)` from the normalised
// cache without the network, changes statuses with lifecycle mutations and sees the cached
// campaigns follow, and (with OTHER_TOKEN) checks another organization sees none of it.
// Every HTTP exchange goes through a recording fetch, so the wire protocol is asserted too.
// Exits non-zero with a message on the first failure.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";

import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { loadDevMessages, loadErrorMessages } from "@apollo/client/dev/index.js";
import { BatchHttpLink } from "@apollo/client/link/batch-http/index.js";
import { setContext } from "@apollo/client/link/context/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";
import { relayStylePagination } from "@apollo/client/utilities/index.js";

loadDevMessages();
loadErrorMessages();

const CAMPAIGNS = 7; // more than two pages of PAGE_SIZE
const PAGE_SIZE = 3;
const BATCH_MAX = 5;
const DEADLINE_MS = 100_000;
const RUN = randomBytes(4).toString("hex"); // names and operation names unique to this run

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

function env(name, { required = true } = {}) {
  const value = process.env[name];
  if (required && !value) fail(`${name} is not set`);
  return value || undefined;
}

function fail(message) {
  console.error(`e2e/apollo: FAILED: ${message}`);
  process.exit(1);
}

/** The token's claims (not verified: the server does that), to know who we are. */
function claimsOf(token, name) {
  try {
    const claims = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
    if (claims.sub && claims.org_id) return claims;
  } catch {
    // reported below
  }
  return fail(`${name} is not a JWT with sub and org_id claims`);
}

// ---------------------------------------------------------------------------------------------
// Recording fetch: every request the links send, with what the server answered.

class Recorder {
  constructor(label) {
    this.label = label;
    this.exchanges = [];
    this.fetch = this.fetch.bind(this);
  }

  async fetch(input, init = {}) {
    const url = new URL(String(input));
    const method = (init.method || "GET").toUpperCase();
    let body = null;
    if (typeof init.body === "string") body = JSON.parse(init.body);
    const ops = method === "GET" ? [opFromSearchParams(url.searchParams)] : [body].flat();
    const response = await fetch(input, init);
    let answer = null;
    try {
      answer = await response.clone().json();
    } catch {
      answer = null; // the link reports a non-JSON answer itself
    }
    this.exchanges.push({ method, url, body, batched: Array.isArray(body), ops, status: response.status, answer });
    return response;
  }

  get count() {
    return this.exchanges.length;
  }

  since(mark) {
    return this.exchanges.slice(mark);
  }

  /** The last few exchanges, for a failure message. */
  tail(n = 4) {
    return this.exchanges
      .slice(-n)
      .map((x) => {
        const sent = `${x.method} ${x.url.pathname}${x.url.search} ${JSON.stringify(x.body)}`;
        return `  ${sent} -> ${x.status} ${JSON.stringify(x.answer)}`;
      })
      .join("\n");
  }
}

function opFromSearchParams(params) {
  const op = {};
  for (const key of ["query", "operationName"]) if (params.has(key)) op[key] = params.get(key);
  for (const key of ["variables", "extensions"]) if (params.has(key)) op[key] = JSON.parse(params.get(key));
  return op;
}

const isMutationOp = (op) => /^(Create|Pause|Schedule|Cancel)_/.test(op.operationName || "");
const hashOf = (op) => op.extensions?.persistedQuery?.sha256Hash;
const answersOf = (x) => [x.answer].flat();
const notFound = (answer) =>
  (answer?.errors || []).some((e) => e.extensions?.code === "PERSISTED_QUERY_NOT_FOUND");

// ---------------------------------------------------------------------------------------------
// Documents. Operation names carry the pass and run, so their hashes are new to the server.

function documents(pass) {
  const tag = `${pass}_${RUN}`;
  const fields = gql`
    fragment E2ECampaign on Campaign {
      id
      organizationId
      name
      message
      type
      status
      scheduleDate
      isAutopilot
      failedDetailsTotal
      stats {
        total
      }
      createdBy {
        id
        fullName
      }
      createdAt
    }
  `;
  const userErrors = "userErrors { field code message }";
  return {
    me: gql(`query Me_${tag} { me { userId organizationId } }`),
    create: gql`
      mutation ${`Create_${tag}`}($input: CreateCampaignInput!) {
        createCampaign(input: $input) {
          ${userErrors}
          campaign { ...E2ECampaign }
        }
      }
      ${fields}
    `,
    list: gql`
      query ${`Campaigns_${tag}`}($first: Int, $after: String, $filter: CampaignFilter) {
        campaigns(first: $first, after: $after, filter: $filter) {
          totalCount
          edges { cursor node { ...E2ECampaign } }
          pageInfo { hasNextPage endCursor }
        }
      }
      ${fields}
    `,
    one: gql`
      query ${`Campaign_${tag}`}($id: ID!) { campaign(id: $id) { ...E2ECampaign } }
      ${fields}
    `,
    pause: gql(`mutation Pause_${tag}($id: ID!) {
      pauseCampaign(id: $id) { ${userErrors} campaign { id status } } }`),
    schedule: gql(`mutation Schedule_${tag}($id: ID!, $when: DateTime!) {
      scheduleCampaign(id: $id, scheduleDate: $when) { ${userErrors} campaign { id status scheduleDate } } }`),
    cancel: gql(`mutation Cancel_${tag}($id: ID!) {
      cancelCampaign(id: $id) { ${userErrors} campaign { id status } } }`),
  };
}

// ---------------------------------------------------------------------------------------------
// Clients

function makeCache() {
  return new InMemoryCache({
    typePolicies: {
      Query: {
        fields: {
          // Pages fetched with fetchMore({ after }) merge into one list per filter and order.
          campaigns: relayStylePagination(["filter", "orderBy"]),
          // campaign(id) is answered from the normalised Campaign, however it got there.
          campaign: {
            read(existing, { args, toReference }) {
              return existing !== undefined ? existing : toReference({ __typename: "Campaign", id: args.id });
            },
          },
        },
      },
    },
  });
}

function makeClient(pass, url, token, recorder) {
  const auth = setContext((_, { headers }) => ({
    headers: { ...headers, Authorization: `Bearer ${token}` },
  }));
  let transport;
  if (pass === "batch") {
    transport = new BatchHttpLink({ uri: url, fetch: recorder.fetch, batchMax: BATCH_MAX, batchInterval: 10 });
  } else {
    transport = createPersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(
      new HttpLink({ uri: url, fetch: recorder.fetch }),
    );
  }
  return new ApolloClient({ link: auth.concat(transport), cache: makeCache() });
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** An ISO date `days` ahead, written with a +02:00 offset (the server stores the instant). */
function futureWithOffset(days) {
  const when = new Date(Date.now() + days * 86_400_000);
  when.setUTCMilliseconds(0);
  const shifted = new Date(when.getTime() + 2 * 3_600_000);
  return { iso: shifted.toISOString().replace(/\.\d{3}Z$/, "+02:00"), ms: when.getTime() };
}

function sameInstant(actual, expectedMs, what) {
  assert.ok(typeof actual === "string" && /(Z|[+-]\d\d:?\d\d)$/.test(actual), `${what}: ${actual} has no time zone`);
  assert.equal(Date.parse(actual), expectedMs, `${what}: ${actual} is not ${new Date(expectedMs).toISOString()}`);
}

function firstResult(observable) {
  return new Promise((resolve, reject) => {
    const subscription = observable.subscribe({
      next: (result) => {
        if (!result.loading) resolve({ result, subscription });
      },
      error: reject,
    });
  });
}

function noUserErrors(payload, what) {
  assert.deepEqual(payload.userErrors, [], `${what}: userErrors`);
  assert.ok(payload.campaign, `${what}: no campaign in the payload`);
}

// ---------------------------------------------------------------------------------------------
// One pass

async function runPass(pass, { url, token, otherToken }) {
  const recorder = new Recorder(pass);
  const client = makeClient(pass, url, token, recorder);
  const doc = documents(pass);
  const me = claimsOf(token, "TOKEN");
  const stats = { pass, requests: 0, batches: 0, batchedOps: 0, persistedHits: 0, persistedMisses: 0 };
  const step = async (name, fn) => {
    try {
      return await fn();
    } catch (error) {
      const detail = error?.graphQLErrors?.length ? ` ${JSON.stringify(error.graphQLErrors)}` : "";
      const network = error?.networkError?.result ? ` network: ${JSON.stringify(error.networkError.result)}` : "";
      error.message = `[${pass}] ${name}: ${error.message}${detail}${network}\n last requests:\n${recorder.tail()}`;
      throw error;
    }
  };

  // 0. Who we are, as the server sees the token.
  await step("me", async () => {
    const { data } = await client.query({ query: doc.me, fetchPolicy: "network-only" });
    assert.equal(data.me.userId, me.sub);
    assert.equal(data.me.organizationId, me.org_id);
  });

  // 1. createCampaign, one per request, in sequence.
  const prefix = `e2e ${RUN} ${pass} #`;
  const created = [];
  await step("createCampaign", async () => {
    for (let i = 0; i < CAMPAIGNS; i++) {
      const scheduled = i % 2 === 0;
      const when = scheduled ? futureWithOffset(10 + i) : null;
      const base = (pass === "batch" ? 0 : 100) + i * 2;
      const input = {
        name: `${prefix}${i}`,
        message: `Hi {{firstName|there}}, campaign ${i}`,
        newContacts: [0, 1].map((j) => ({
          firstName: `C${base + j}`,
          phoneNumber: `+1212300${String(base + j).padStart(4, "0")}`,
        })),
        ...(when ? { scheduleDate: when.iso } : {}),
      };
      const mark = recorder.count;
      const { data } = await client.mutate({ mutation: doc.create, variables: { input } });
      const payload = data.createCampaign;
      noUserErrors(payload, input.name);
      const c = payload.campaign;
      assert.match(c.id, /^[0-9a-f]{24}$/);
      assert.equal(c.organizationId, me.org_id);
      assert.equal(c.name, input.name);
      assert.equal(c.message, input.message);
      assert.equal(c.type, "SMS");
      assert.equal(c.status, scheduled ? "SCHEDULED" : "DRAFT");
      if (scheduled) sameInstant(c.scheduleDate, when.ms, `${input.name} scheduleDate`);
      else assert.equal(c.scheduleDate, null);
      assert.equal(c.isAutopilot, false);
      assert.equal(c.failedDetailsTotal, 0);
      assert.equal(c.stats.total, 2);
      assert.equal(c.createdBy.id, me.sub);
      assert.ok(!Number.isNaN(Date.parse(c.createdAt)), `createdAt ${c.createdAt}`);
      // Never more than one creation per HTTP request.
      for (const x of recorder.since(mark)) {
        assert.equal(x.ops.length, 1, "a createCampaign request carried other operations");
        assert.equal(x.method, "POST", "a mutation went out other than by POST");
      }
      created.push(c);
    }
    assert.equal(new Set(created.map((c) => c.id)).size, CAMPAIGNS, "campaign ids are not distinct");
  });
  const newestFirst = [...created].reverse();
  const byId = new Map(created.map((c) => [c.id, c]));

  // 2. campaigns(first: 3), then fetchMore({ after: endCursor }) until hasNextPage is false.
  const listVariables = { first: PAGE_SIZE, filter: { search: prefix } };
  const watched = client.watchQuery({ query: doc.list, variables: listVariables });
  let watchSubscription;
  await step("campaigns + fetchMore", async () => {
    const mark = recorder.count;
    const { result, subscription } = await firstResult(watched);
    watchSubscription = subscription;
    let page = result.data.campaigns;
    const pageSizes = [page.edges.length];
    assert.equal(page.totalCount, CAMPAIGNS);
    while (page.pageInfo.hasNextPage) {
      assert.ok(pageSizes.length <= CAMPAIGNS, "hasNextPage never became false");
      const more = await watched.fetchMore({ variables: { after: page.pageInfo.endCursor } });
      const fresh = more.data.campaigns;
      pageSizes.push(fresh.edges.length);
      assert.ok(fresh.edges.length > 0, "a page after hasNextPage: true is empty");
      page = watched.getCurrentResult().data.campaigns; // the merged list
      assert.equal(page.pageInfo.hasNextPage, fresh.pageInfo.hasNextPage);
      assert.equal(page.pageInfo.endCursor, fresh.pageInfo.endCursor);
    }
    const expectedSizes = [];
    for (let left = CAMPAIGNS; left > 0; left -= PAGE_SIZE) expectedSizes.push(Math.min(left, PAGE_SIZE));
    assert.deepEqual(pageSizes, expectedSizes, "page sizes");
    const listRequests = recorder.since(mark).filter((x) => !notFound(x.answer));
    assert.equal(listRequests.length, expectedSizes.length, "one request per page");

    const merged = client.readQuery({ query: doc.list, variables: listVariables }).campaigns;
    for (const list of [page, merged]) {
      const ids = list.edges.map((e) => e.node.id);
      assert.equal(new Set(ids).size, ids.length, `a campaign is listed twice: ${ids}`);
      assert.deepEqual(ids, newestFirst.map((c) => c.id), "merged list is not every campaign, newest first");
      assert.equal(list.pageInfo.hasNextPage, false);
      assert.equal(list.edges.at(-1).cursor, list.pageInfo.endCursor);
      for (const edge of list.edges) assert.deepEqual(stripTypename(edge.node), stripTypename(byId.get(edge.node.id)));
    }
    const createdAts = merged.edges.map((e) => Date.parse(e.node.createdAt));
    assert.deepEqual(createdAts, [...createdAts].sort((a, b) => b - a), "not in createdAt DESC order");
  });

  // 3. campaign(id) from the normalised cache: no request leaves.
  await step("campaign(id) cache-only", async () => {
    const mark = recorder.count;
    for (const c of created) {
      const { data } = await client.query({ query: doc.one, variables: { id: c.id }, fetchPolicy: "cache-only" });
      assert.ok(data?.campaign, `campaign ${c.id} is not in the cache`);
      assert.deepEqual(stripTypename(data.campaign), stripTypename(c));
    }
    assert.equal(recorder.count, mark, "a cache-only read went to the network");
  });

  // 4. Lifecycle mutations: the payload's { id status } updates the cached campaign.
  const expectedStatus = new Map(created.map((c) => [c.id, c.status]));
  await step("lifecycle mutations", async () => {
    const newDate = futureWithOffset(40);
    const moves = [
      { name: "pauseCampaign", mutation: doc.pause, target: created[0], from: "SCHEDULED", to: "PAUSED" },
      {
        name: "scheduleCampaign",
        mutation: doc.schedule,
        target: created[1],
        from: "DRAFT",
        to: "SCHEDULED",
        when: newDate,
      },
      { name: "cancelCampaign", mutation: doc.cancel, target: created[3], from: "DRAFT", to: "CANCELLED" },
    ];
    for (const move of moves) {
      const { id } = move.target;
      const before = await client.query({ query: doc.one, variables: { id }, fetchPolicy: "cache-only" });
      assert.equal(before.data.campaign.status, move.from, `${move.name}: status before`);
      const variables = move.when ? { id, when: move.when.iso } : { id };
      const { data } = await client.mutate({ mutation: move.mutation, variables });
      const payload = data[move.name];
      noUserErrors(payload, move.name);
      assert.equal(payload.campaign.id, id);
      assert.equal(payload.campaign.status, move.to);
      if (move.when) sameInstant(payload.campaign.scheduleDate, move.when.ms, `${move.name} scheduleDate`);
      expectedStatus.set(id, move.to);

      const mark = recorder.count;
      const after = await client.query({ query: doc.one, variables: { id }, fetchPolicy: "cache-only" });
      assert.equal(after.data.campaign.status, move.to, `${move.name}: cached status not updated`);
      if (move.when) sameInstant(after.data.campaign.scheduleDate, move.when.ms, `${move.name}: cached scheduleDate`);
      assert.equal(after.data.campaign.name, move.target.name, "the rest of the cached campaign is kept");
      assert.equal(recorder.count, mark, "reading the changed campaign went to the network");
    }
    // The watched, merged list shows the new statuses too, without a refetch.
    const listed = watched.getCurrentResult().data.campaigns.edges.map((e) => [e.node.id, e.node.status]);
    assert.deepEqual(listed, newestFirst.map((c) => [c.id, expectedStatus.get(c.id)]), "the watched list");
  });

  // 5. The same query twice over the network, then several at once: batched into POSTs of
  //    more than one operation (batch pass), or each a GET by hash alone (persisted pass).
  await step("network reads", async () => {
    const check = (data, c) => {
      assert.ok(data.campaign, `campaign ${c.id} came back null`);
      assert.equal(data.campaign.id, c.id);
      assert.equal(data.campaign.name, c.name);
      assert.equal(data.campaign.status, expectedStatus.get(c.id), `status of ${c.name} on the server`);
      assert.equal(data.campaign.stats.total, 2);
    };
    const [target] = created;
    const single = async () => {
      const mark = recorder.count;
      const variables = { id: target.id };
      const { data } = await client.query({ query: doc.one, variables, fetchPolicy: "network-only" });
      check(data, target);
      return recorder.since(mark);
    };
    const firstTime = await single();
    const secondTime = await single();
    if (pass === "persisted") {
      // First: hash only by GET, not found; then the full query by POST, which runs.
      assert.deepEqual(
        firstTime.map((x) => [x.method, x.url.searchParams.has("query") || "query" in x.ops[0], notFound(x.answer)]),
        [["GET", false, true], ["POST", true, false]],
        "the first campaign(id) request",
      );
      // Second: hash only by GET, found.
      assert.deepEqual(
        secondTime.map((x) => [x.method, x.url.searchParams.has("query") || "query" in x.ops[0], notFound(x.answer)]),
        [["GET", false, false]],
        "the second campaign(id) request",
      );
      assert.equal(hashOf(secondTime[0].ops[0]), hashOf(firstTime[0].ops[0]));
      assert.equal(secondTime[0].status, 200);
    } else {
      assert.equal(firstTime.length, 1);
      assert.equal(secondTime.length, 1);
    }

    const mark = recorder.count;
    const results = await Promise.all([
      client.query({ query: doc.me, fetchPolicy: "network-only" }),
      ...created.map((c) => client.query({ query: doc.one, variables: { id: c.id }, fetchPolicy: "network-only" })),
    ]);
    assert.equal(results[0].data.me.organizationId, me.org_id);
    results.slice(1).forEach(({ data }, i) => check(data, created[i]));
    const exchanges = recorder.since(mark);
    if (pass === "batch") {
      const sizes = exchanges.map((x) => x.ops.length);
      assert.ok(exchanges.some((x) => x.batched && x.ops.length > 1), `no batch of more than one: ${sizes}`);
      assert.ok(sizes.every((n) => n <= BATCH_MAX), `a batch exceeds batchMax: ${sizes}`);
      assert.equal(sizes.reduce((a, b) => a + b, 0), results.length, `operations sent: ${sizes}`);
      for (const x of exchanges) assert.equal(answersOf(x).length, x.ops.length, "one answer per batched operation");
    } else {
      const methods = exchanges.map((x) => `${x.method}${notFound(x.answer) ? " miss" : ""}`);
      assert.deepEqual(methods, results.map(() => "GET"), "known queries go by GET with the hash alone");
    }
  });

  // 6. The persisted-queries protocol, as it went over the wire.
  if (pass === "persisted") {
    await step("persisted-query protocol", async () => {
      const seen = new Map(); // hash -> what happened to it, in order
      for (const x of recorder.exchanges) {
        assert.equal(x.batched, false, "HttpLink sent a batch");
        const [op] = x.ops;
        const hash = hashOf(op);
        assert.match(hash || "", /^[0-9a-f]{64}$/, `a request without a persisted hash: ${JSON.stringify(op)}`);
        const history = seen.get(hash) || [];
        if (op.query === undefined) {
          // Hash only: queries by GET, mutations by POST.
          assert.equal(x.method, isMutationOp(op) ? "POST" : "GET", `${op.operationName} hash-only method`);
          if (notFound(x.answer)) {
            assert.equal(history.length, 0, `${op.operationName}: PERSISTED_QUERY_NOT_FOUND after it was sent in full`);
            assert.equal(x.answer.data ?? null, null);
            history.push("miss");
            stats.persistedMisses++;
          } else {
            assert.ok(history.includes("full"), `${op.operationName}: a hash the server had not seen ran`);
            assert.equal(x.answer?.errors, undefined, `${op.operationName}: ${JSON.stringify(x.answer)}`);
            history.push("hit");
            stats.persistedHits++;
          }
        } else {
          // The retry: the full query (by POST), right after the miss, with its hash.
          assert.equal(x.method, "POST", `${op.operationName}: the full query went by ${x.method}`);
          assert.deepEqual(history, ["miss"], `${op.operationName}: sent in full without a miss first`);
          assert.equal(sha256(op.query), hash, `${op.operationName}: hash does not match the query`);
          assert.equal(x.answer?.errors, undefined, `${op.operationName}: ${JSON.stringify(x.answer)}`);
          history.push("full");
        }
        seen.set(hash, history);
      }
      // Every operation document (me, create, list, one, pause, schedule, cancel) missed once,
      // was sent in full once, and every later request of it went by hash alone.
      assert.equal(seen.size, 7, `distinct hashes: ${seen.size}`);
      for (const history of seen.values()) assert.deepEqual(history.slice(0, 2), ["miss", "full"]);
      const listHits = recorder.exchanges.filter(
        (x) => x.method === "GET" && x.ops[0].operationName?.startsWith("Campaigns_") && !notFound(x.answer),
      );
      assert.ok(listHits.length >= 1, "fetchMore pages did not go by GET with the hash");
      for (const x of listHits) assert.equal(x.url.searchParams.has("query"), false);
      const createHits = recorder.exchanges.filter(
        (x) => x.ops[0].operationName?.startsWith("Create_") && x.ops[0].query === undefined && !notFound(x.answer),
      );
      assert.equal(createHits.length, CAMPAIGNS - 1, "createCampaign by hash after the first");
    });
  } else {
    await step("batch protocol", async () => {
      for (const x of recorder.exchanges) {
        assert.equal(x.method, "POST");
        assert.equal(x.batched, true, "BatchHttpLink sent a non-array body");
        assert.ok(x.ops.every((op) => typeof op.query === "string" && !hashOf(op)));
        assert.equal(answersOf(x).length, x.ops.length);
        if (x.ops.length > 1) {
          stats.batches++;
          stats.batchedOps += x.ops.length;
        }
      }
    });
  }

  // 7. Another organization sees none of these campaigns.
  if (otherToken) {
    await step("other organization", async () => {
      const otherRecorder = new Recorder(`${pass}-other`);
      const other = makeClient(pass, url, otherToken, otherRecorder);
      const them = claimsOf(otherToken, "OTHER_TOKEN");
      assert.notEqual(them.org_id, me.org_id, "OTHER_TOKEN is of the same organization");
      const who = await other.query({ query: doc.me, fetchPolicy: "network-only" });
      assert.equal(who.data.me.organizationId, them.org_id);
      const listed = await other.query({ query: doc.list, variables: listVariables, fetchPolicy: "network-only" });
      assert.equal(listed.data.campaigns.totalCount, 0);
      assert.deepEqual(listed.data.campaigns.edges, []);
      assert.equal(listed.data.campaigns.pageInfo.hasNextPage, false);
      const everything = await other.query({ query: doc.list, variables: { first: 100 }, fetchPolicy: "network-only" });
      const leaked = everything.data.campaigns.edges.filter((e) => byId.has(e.node.id));
      assert.deepEqual(leaked, [], "another organization lists our campaigns");
      const reads = await Promise.all(
        created.map((c) =>
          other.query({ query: doc.one, variables: { id: c.id }, fetchPolicy: "network-only", errorPolicy: "all" }),
        ),
      );
      for (const r of reads) {
        assert.equal(r.errors, undefined, `campaign(id) of another organization: ${JSON.stringify(r.errors)}`);
        assert.equal(r.data.campaign, null, "another organization reads our campaign");
      }
      const theirs = await other.mutate({ mutation: doc.cancel, variables: { id: created[2].id }, errorPolicy: "all" });
      const refused = theirs.data?.cancelCampaign;
      assert.ok(refused && refused.campaign === null && refused.userErrors.length > 0,
        `another organization cancelled our campaign: ${JSON.stringify(theirs)}`);
      const variables = { id: created[2].id };
      const still = await client.query({ query: doc.one, variables, fetchPolicy: "network-only" });
      assert.equal(still.data.campaign.status, expectedStatus.get(created[2].id));
      stats.otherRequests = otherRecorder.count;
      stats.otherRefusal = refused.userErrors[0].code;
    });
  }

  watchSubscription?.unsubscribe();
  await client.clearStore();
  stats.requests = recorder.count;
  return stats;
}

function stripTypename(value) {
  if (Array.isArray(value)) return value.map(stripTypename);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => k !== "__typename")
        .map(([k, v]) => [k, stripTypename(v)]),
    );
  }
  return value;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const url = env("GRAPHQL_URL");
  const token = env("TOKEN");
  const otherToken = env("OTHER_TOKEN", { required: false });
  setTimeout(() => fail(`not finished after ${DEADLINE_MS / 1000} s`), DEADLINE_MS).unref();
  const started = Date.now();
  for (const pass of ["batch", "persisted"]) {
    const t0 = Date.now();
    const s = await runPass(pass, { url, token, otherToken });
    const extra =
      pass === "batch"
        ? `${s.batches} batches of >1 (${s.batchedOps} operations)`
        : `${s.persistedHits} persisted hits, ${s.persistedMisses} misses`;
    const other = otherToken
      ? `; other organization: ${s.otherRequests} requests, nothing visible, writes refused (${s.otherRefusal})`
      : "";
    const took = `${Date.now() - t0} ms`;
    console.log(`[${pass}] ok: ${CAMPAIGNS} campaigns, ${s.requests} requests, ${extra}${other} (${took})`);
  }
  console.log(`e2e/apollo: all checks passed in ${Date.now() - started} ms`);
}

main().catch((error) => {
  console.error(error?.stack || error);
  fail(error?.message?.split("\n")[0] || String(error));
});

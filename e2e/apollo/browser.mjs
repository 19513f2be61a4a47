// The browser build of the Apollo client test: bundled by esbuild into dist/apollo-browser.js
// (npm run build) and loaded by a page served from another origin than the API's, so the
// browser applies CORS exactly as it would to an Apollo app on app.example.com.
import { ApolloClient, HttpLink, InMemoryCache, gql, split } from "@apollo/client/core";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";

const ME = gql`query Me { me { userId organizationId } }`;
const CREATE = gql`
  mutation Create($input: CreateCampaignInput!) {
    createCampaign(input: $input) { campaign { id status } userErrors { field code message } }
  }
`;
const PROGRESS = gql`
  subscription Progress($id: ID!) { campaignProgress(id: $id) { status stats { total } } }
`;

function clientFor(api, token) {
  const http = new HttpLink({
    uri: `${api}/graphql`,
    headers: { authorization: `Bearer ${token}`, "apollographql-client-name": "cors-e2e" },
  });
  const ws = new GraphQLWsLink(
    createClient({
      url: `${api.replace("http", "ws")}/graphql`,
      connectionParams: { Authorization: `Bearer ${token}` },
      retryAttempts: 0,
    }),
  );
  const link = split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === "OperationDefinition" && definition.operation === "subscription";
    },
    ws,
    http,
  );
  return new ApolloClient({ link, cache: new InMemoryCache() });
}

// Runs a query, a mutation and a subscription's first value; returns what happened to each
// (an error's message instead of a value), never throws.
window.runApollo = async function runApollo(api, token, name) {
  const client = clientFor(api, token);
  const outcome = {};
  const attempt = async (key, work) => {
    try {
      outcome[key] = await work();
    } catch (error) {
      outcome[key] = { error: String(error && error.message ? error.message : error) };
    }
  };
  await attempt("me", async () => (await client.query({ query: ME })).data.me);
  await attempt("create", async () => {
    const variables = { input: { name, message: "Hi {{firstName|there}}", status: "DRAFT" } };
    return (await client.mutate({ mutation: CREATE, variables })).data.createCampaign;
  });
  const id = outcome.create && outcome.create.campaign && outcome.create.campaign.id;
  await attempt("progress", () =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no progress within 15 s")), 15000);
      const subscription = client
        .subscribe({ query: PROGRESS, variables: { id: id || "000000000000000000000000" } })
        .subscribe({
          next: (result) => {
            clearTimeout(timer);
            subscription.unsubscribe();
            resolve(result.data ? result.data.campaignProgress : { errors: result.errors });
          },
          error: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        });
    }),
  );
  client.stop();
  return outcome;
};

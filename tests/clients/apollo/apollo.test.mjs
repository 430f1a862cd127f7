// Apollo Client 4 against a running billing server, as a front end would use it.
//
//   API_URL         http://127.0.0.1:8000 (the server; /graphql is appended, ws:// derived)
//   ADMIN_TOKEN     an admin bearer token of the organization that owns the data
//   CUSTOMER_ID     a customer with at least 3 payments (cus_…)
//   POSSIBLE_TYPES  path to the JSON of `billing export-schema --possible-types`
//
// Checks: a normalized cache keyed on __typename + id (possibleTypes for the Node interface),
// relayStylePagination merging `payments` pages read with first/after, a mutation payload
// updating a query already in the cache without a refetch, and a `Live` subscription over
// graphql-ws receiving the event of a payment confirmed meanwhile. Exits 1 on any failure.
// Run: node apollo.test.mjs (tests/clients/test_apollo.py seeds the data and runs it).

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition, relayStylePagination } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}

const API_URL = required("API_URL").replace(/\/$/, "");
const ADMIN_TOKEN = required("ADMIN_TOKEN");
const CUSTOMER_ID = required("CUSTOMER_ID");
const possibleTypes = JSON.parse(readFileSync(required("POSSIBLE_TYPES"), "utf8"));

const checks = [];
function check(name, fn) {
  checks.push({ name, fn });
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Every HTTP request is counted, so "without a refetch" can be asserted.
const requests = [];
const httpLink = new HttpLink({
  uri: `${API_URL}/graphql`,
  headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  fetch: (url, init) => {
    requests.push(JSON.parse(init.body).operationName);
    return fetch(url, { ...init, signal: AbortSignal.timeout(20_000) });
  },
});

const wsClient = createClient({
  url: `${API_URL.replace(/^http/, "ws")}/graphql`,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${ADMIN_TOKEN}` },
  retryAttempts: 0,
});

const link = ApolloLink.split(
  ({ query }) => {
    const definition = getMainDefinition(query);
    return definition.kind === "OperationDefinition" && definition.operation === "subscription";
  },
  new GraphQLWsLink(wsClient),
  httpLink,
);

const cache = new InMemoryCache({
  possibleTypes,
  typePolicies: {
    Query: {
      fields: {
        // Pages of the same filter and order merge into one list of edges.
        payments: relayStylePagination(["filter", "orderBy"]),
      },
    },
  },
});

const client = new ApolloClient({ link, cache });

const PAYMENT = gql`
  fragment PaymentRow on Payment {
    id
    status
    amount {
      amount
      currency
    }
  }
`;

const PAYMENTS = gql`
  query Payments($first: Int!, $after: String, $filter: PaymentFilter) {
    payments(first: $first, after: $after, filter: $filter, orderBy: NEWEST_FIRST) {
      edges {
        cursor
        node {
          ...PaymentRow
        }
      }
      pageInfo {
        hasNextPage
        hasPreviousPage
        startCursor
        endCursor
      }
      totalCount
    }
  }
  ${PAYMENT}
`;

const CUSTOMER = gql`
  query Customer($id: ID!) {
    customer(id: $id) {
      id
      name
      email
    }
  }
`;

const NODE = gql`
  query Node($id: ID!) {
    node(id: $id) {
      id
      ... on Customer {
        name
      }
    }
  }
`;

const CUSTOMER_UPDATE = gql`
  mutation CustomerUpdate($input: CustomerUpdateInput!) {
    customerUpdate(input: $input) {
      customer {
        id
        name
      }
      errors {
        field
        message
        code
      }
    }
  }
`;

const PAYMENT_CREATE = gql`
  mutation PaymentCreate($input: PaymentIntentCreateInput!) {
    paymentIntentCreate(input: $input) {
      payment {
        ...PaymentRow
      }
      errors {
        field
        message
        code
      }
    }
  }
  ${PAYMENT}
`;

const PAYMENT_CONFIRM = gql`
  mutation PaymentConfirm($input: PaymentIntentConfirmInput!) {
    paymentIntentConfirm(input: $input) {
      payment {
        ...PaymentRow
      }
      errors {
        field
        message
        code
      }
    }
  }
  ${PAYMENT}
`;

const PAYMENT_EVENTS = gql`
  subscription PaymentEvents($customerId: ID) {
    paymentEvents(customerId: $customerId) {
      kind
      status
      customerId
      payment {
        ...PaymentRow
      }
    }
  }
  ${PAYMENT}
`;

check("relayStylePagination merges first/after pages of payments", async () => {
  const filter = { customerId: CUSTOMER_ID };
  const watch = client.watchQuery({ query: PAYMENTS, variables: { first: 2, filter } });
  const first = await client.query({ query: PAYMENTS, variables: { first: 2, filter } });
  const page1 = first.data.payments;
  assert.equal(page1.edges.length, 2);
  assert.equal(page1.pageInfo.hasNextPage, true);
  assert.equal(page1.pageInfo.hasPreviousPage, false);
  assert.ok(page1.totalCount >= 3, `totalCount ${page1.totalCount}`);
  assert.equal(page1.pageInfo.endCursor, page1.edges.at(-1).cursor);

  const more = await watch.fetchMore({ variables: { after: page1.pageInfo.endCursor } });
  assert.ok(more.data.payments.edges.length >= 1);

  // What the cache holds for the query is now both pages, in order, without duplicates.
  const merged = client.readQuery({ query: PAYMENTS, variables: { first: 2, filter } }).payments;
  const ids = merged.edges.map((edge) => edge.node.id);
  assert.equal(ids.length, Math.min(4, page1.totalCount), JSON.stringify(ids));
  assert.equal(new Set(ids).size, ids.length, "duplicate edges");
  assert.deepEqual(
    ids.slice(0, 2),
    page1.edges.map((edge) => edge.node.id),
  );
  assert.deepEqual(
    ids.slice(2),
    more.data.payments.edges.map((edge) => edge.node.id),
  );
  assert.equal(merged.pageInfo.startCursor, page1.pageInfo.startCursor);
  assert.equal(merged.pageInfo.endCursor, more.data.payments.pageInfo.endCursor);
  for (const id of ids) assert.match(id, /^pay_/);
});

check("the cache is normalized on __typename + id, with possibleTypes for Node", async () => {
  await client.query({ query: CUSTOMER, variables: { id: CUSTOMER_ID } });
  const key = cache.identify({ __typename: "Customer", id: CUSTOMER_ID });
  assert.equal(key, `Customer:${CUSTOMER_ID}`);
  const stored = cache.extract()[key];
  assert.ok(stored, `no ${key} in the cache`);
  assert.equal(stored.id, CUSTOMER_ID);

  // Fragments on the Node interface match the Customer entity only through possibleTypes.
  const asNode = cache.readFragment({
    id: key,
    fragment: gql`
      fragment AnyNode on Node {
        id
      }
    `,
  });
  assert.deepEqual(asNode, { __typename: "Customer", id: CUSTOMER_ID });

  // `node(id:)` resolves to the same normalized entity: no second copy.
  const node = await client.query({ query: NODE, variables: { id: CUSTOMER_ID } });
  assert.equal(node.data.node.__typename, "Customer");
  assert.equal(node.data.node.name, stored.name);
  const customerKeys = Object.keys(cache.extract()).filter((k) => k.startsWith("Customer:"));
  assert.deepEqual(customerKeys, [key]);

  // A payment read in the list above is one entity as well.
  const paymentKeys = Object.keys(cache.extract()).filter((k) => k.startsWith("Payment:pay_"));
  assert.ok(paymentKeys.length >= 3, JSON.stringify(paymentKeys));
});

check("a mutation payload updates a cached query without a refetch", async () => {
  const watched = client.watchQuery({ query: CUSTOMER, variables: { id: CUSTOMER_ID } });
  const seen = [];
  const subscription = watched.subscribe({
    next: (result) => {
      if (result.data?.customer) seen.push(result.data.customer.name);
    },
  });
  const before = await client.query({ query: CUSTOMER, variables: { id: CUSTOMER_ID } });
  const newName = `Renamed ${randomUUID().slice(0, 8)}`;
  assert.notEqual(before.data.customer.name, newName);

  const sent = requests.length;
  const result = await client.mutate({
    mutation: CUSTOMER_UPDATE,
    variables: { input: { id: CUSTOMER_ID, name: newName } },
  });
  assert.deepEqual(result.data.customerUpdate.errors, []);
  assert.equal(requests.length, sent + 1, `requests: ${requests.slice(sent)}`);
  assert.deepEqual(requests.slice(sent), ["CustomerUpdate"]);

  const cached = client.readQuery({ query: CUSTOMER, variables: { id: CUSTOMER_ID } });
  assert.equal(cached.customer.name, newName);
  const cacheOnly = await client.query({
    query: CUSTOMER,
    variables: { id: CUSTOMER_ID },
    fetchPolicy: "cache-only",
  });
  assert.equal(cacheOnly.data.customer.name, newName);
  const viaNode = await client.query({
    query: NODE,
    variables: { id: CUSTOMER_ID },
    fetchPolicy: "cache-only",
  });
  assert.equal(viaNode.data.node.name, newName);
  await withTimeout(
    (async () => {
      while (seen.at(-1) !== newName) await new Promise((r) => setTimeout(r, 20));
    })(),
    5_000,
    `the watched query to show ${newName} (saw ${JSON.stringify(seen)})`,
  );
  assert.equal(requests.length, sent + 1, `refetched: ${requests.slice(sent)}`);
  subscription.unsubscribe();
});

check("a Live subscription over graphql-ws receives a confirmed payment", async () => {
  let resolveEvent;
  const succeeded = new Promise((resolve) => {
    resolveEvent = resolve;
  });
  const events = [];
  let failure = null;
  let wanted = null;
  const live = client
    .subscribe({ query: PAYMENT_EVENTS, variables: { customerId: CUSTOMER_ID } })
    .subscribe({
      next: (result) => {
        if (result.error) failure = result.error;
        const event = result.data?.paymentEvents;
        if (!event) return;
        events.push(event);
        if (wanted && event.payment.id === wanted && event.payment.status === "SUCCEEDED") {
          resolveEvent(event);
        }
      },
      error: (error) => {
        failure = error;
      },
    });
  // graphql-ws subscribes once the socket is acknowledged; give it that moment.
  await withTimeout(
    new Promise((resolve) => {
      if (wsClientConnected) resolve();
      else onConnected = resolve;
    }),
    10_000,
    "graphql-ws connection_ack",
  );
  await new Promise((r) => setTimeout(r, 500));

  const created = await client.mutate({
    mutation: PAYMENT_CREATE,
    variables: {
      input: {
        customerId: CUSTOMER_ID,
        amount: { amount: "4200", currency: "USD" },
        paymentMethodId: "pm_card_visa",
        description: "Apollo live test",
        idempotencyKey: randomUUID(),
      },
    },
  });
  assert.deepEqual(created.data.paymentIntentCreate.errors, []);
  wanted = created.data.paymentIntentCreate.payment.id;
  for (const event of events) {
    if (event.payment.id === wanted && event.payment.status === "SUCCEEDED") resolveEvent(event);
  }
  const confirmed = await client.mutate({
    mutation: PAYMENT_CONFIRM,
    variables: { input: { paymentId: wanted, idempotencyKey: randomUUID() } },
  });
  assert.deepEqual(confirmed.data.paymentIntentConfirm.errors, []);

  const event = await withTimeout(
    succeeded,
    20_000,
    `a paymentEvents event for ${wanted} (got ${JSON.stringify(events)}, error ${failure})`,
  );
  live.unsubscribe();
  assert.equal(failure, null, String(failure));
  assert.equal(event.kind, "PAYMENT");
  assert.equal(event.customerId, CUSTOMER_ID);
  assert.equal(event.payment.amount.amount, "4200");
  // The event's payment went through the same normalized cache.
  const stored = cache.extract()[`Payment:${wanted}`];
  assert.equal(stored.status, "SUCCEEDED");
});

let wsClientConnected = false;
let onConnected = null;
wsClient.on("connected", () => {
  wsClientConnected = true;
  onConnected?.();
});

let failed = 0;
for (const { name, fn } of checks) {
  const started = performance.now();
  try {
    await withTimeout(fn(), 60_000, name);
    console.log(`ok - ${name} (${Math.round(performance.now() - started)} ms)`);
  } catch (error) {
    failed += 1;
    console.log(`not ok - ${name}\n${error?.stack ?? error}`);
  }
}
await wsClient.dispose();
client.stop();
console.log(`${checks.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

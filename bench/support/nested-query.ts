/**
 * The query of the `sluice` workload of bench/gateway-throughput.ts, whose plan bench/plan-executor.ts replays: four
 * subgraphs, seven fetches (`me` from auth; its balance and usage from billing and its documents, with their owners'
 * documents, from knowledge; the owners' e-mail from auth and balance from billing; `models` from inference and their
 * prices from billing).
 */
export const NESTED_QUERY = `query Nested {
  me {
    email
    apiKeys { name }
    balance { total }
    usage(from: "2026-01-01T00:00:00Z", to: "2026-02-01T00:00:00Z") { key }
    documents(first: 5) {
      title
      owner { email balance { total } documents(first: 2) { title } }
    }
  }
  models { id pricing { output } }
}`;

/**
 * Metrics of a gateway that runs several worker processes (gateway/workers.ts).
 * Workers share the listening port, so a scrape of `/metrics` reaches any one
 * of them; each would report only its own share of the traffic. Instead the
 * worker that is scraped asks the primary, which gathers every worker's
 * registry over the cluster IPC channel (prom-client's AggregatorRegistry:
 * counters and histograms summed, process metrics kept per their own rules)
 * and answers with the total.
 */
import cluster from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { GatewayMetrics } from './gateway-metrics';

/** Set in the primary's environment, so inherited by the workers it forks: the primary answers. */
const AGGREGATING = 'SLUICE_CLUSTER_METRICS';
const REQUEST = 'sluice:cluster-metrics-request';
const RESPONSE = 'sluice:cluster-metrics-response';
/** prom-client gives up on a worker after 5 s; a little longer here, so its own error is what is reported. */
const TIMEOUT_MS = 6_000;

interface MetricsResponse {
  type: typeof RESPONSE;
  id: number;
  text?: string;
  error?: string;
}

let aggregating = false;

/** In the cluster primary, before it forks the workers: answers their requests for the cluster's metrics. */
export function aggregateWorkerMetrics(): void {
  if (!cluster.isPrimary || aggregating) return;
  aggregating = true;
  process.env[AGGREGATING] = '1';
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: { type?: unknown; id?: unknown } | null) => {
    if (message?.type !== REQUEST) return;
    const reply = (fields: Pick<MetricsResponse, 'text' | 'error'>) => {
      if (worker.isConnected()) worker.send({ type: RESPONSE, id: message.id, ...fields });
    };
    aggregator.clusterMetrics().then(
      (text) => reply({ text }),
      (error: Error) => reply({ error: `the gateway's workers did not all report: ${error.message}` }),
    );
  });
}

type Waiting = Map<number, { resolve: (text: string) => void; reject: (error: Error) => void }>;
let waiting: Waiting | undefined;
let nextId = 0;

/** This worker's registry, reported to the primary when it asks. */
function joinAggregation(metrics: GatewayMetrics): Waiting {
  if (waiting) return waiting;
  const requests: Waiting = new Map();
  new AggregatorRegistry(); // registers the worker's side of prom-client's protocol
  AggregatorRegistry.setRegistries([metrics.registry]);
  process.on('message', (message: MetricsResponse | null) => {
    if (message?.type !== RESPONSE) return;
    const request = requests.get(message.id);
    requests.delete(message.id);
    if (message.text !== undefined) request?.resolve(message.text);
    else request?.reject(new Error(message.error ?? 'the primary sent no metrics'));
  });
  waiting = requests;
  return requests;
}

/** Starts answering the primary's metrics requests now, so a scrape never waits on a worker that never joined. */
export function joinClusterMetrics(metrics: GatewayMetrics): void {
  if (cluster.isWorker && process.env[AGGREGATING] === '1') joinAggregation(metrics);
}

/** The metrics to expose: the whole cluster's from a worker of an aggregating primary, else this process's. */
export function clusterMetricsText(metrics: GatewayMetrics): Promise<string> {
  if (!cluster.isWorker || process.env[AGGREGATING] !== '1' || !process.send) return metrics.text();
  const requests = joinAggregation(metrics);
  const id = nextId++;
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      requests.delete(id);
      reject(new Error(`the gateway's primary process did not answer within ${TIMEOUT_MS} ms`));
    }, TIMEOUT_MS);
    requests.set(id, {
      resolve: (text) => {
        clearTimeout(timer);
        resolve(text);
      },
      reject: (error) => {
        clearTimeout(timer);
        reject(error);
      },
    });
    process.send!({ type: REQUEST, id });
  });
}

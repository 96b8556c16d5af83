import { useQuery } from '@apollo/client/react';
import { graphql } from '../gql';
import { ErrorNotice, Loading } from '../ui/notices';

const ADMIN_MODELS = graphql(`
  query AdminModels {
    models {
      id
      version
      kind
      ready
      state
      reason
      platform
      instances
      maxBatchSize
      endpoints { address ready state inFlight queued breaker }
    }
  }
`);

/** How often the page asks again: the router's own probes run about this often, so faster would show nothing new. */
const REFRESH_MS = 2_000;

/** Models and their GPU endpoints as the inference router sees them, refreshed live (admins only: it names internal addresses). */
export function AdminPage() {
  const { data, loading, error } = useQuery(ADMIN_MODELS, { pollInterval: REFRESH_MS, fetchPolicy: 'network-only', notifyOnNetworkStatusChange: false });
  return (
    <div className="admin">
      <h1>Admin</h1>
      <p className="hint">Models and GPU endpoints, refreshed every {REFRESH_MS / 1000} seconds.</p>
      <ErrorNotice error={error} />
      {loading && !data && <Loading what="models" />}
      {data?.models?.map((model) => (
        <section key={model.id} aria-labelledby={`model-${model.id}`} className="model">
          <h2 id={`model-${model.id}`}>
            {model.id} <span className={`badge ${model.ready ? 'ok' : 'bad'}`}>{model.ready ? 'ready' : model.state.toLowerCase()}</span>
          </h2>
          <p className="hint">
            {model.kind.toLowerCase().replace('_', ' ')} · version {model.version} · {model.platform} · {model.instances} {model.instances === 1 ? 'instance' : 'instances'}
            {model.maxBatchSize > 0 ? ` · batches of up to ${model.maxBatchSize}` : ''}
            {model.reason ? ` · ${model.reason}` : ''}
          </p>
          <table>
            <caption className="visually-hidden">GPU endpoints of {model.id}</caption>
            <thead>
              <tr>
                <th scope="col">Endpoint</th>
                <th scope="col">Ready</th>
                <th scope="col">State</th>
                <th scope="col">In flight</th>
                <th scope="col">Queued</th>
                <th scope="col">Breaker</th>
              </tr>
            </thead>
            <tbody>
              {model.endpoints.map((endpoint) => (
                <tr key={endpoint.address}>
                  <th scope="row">
                    <code>{endpoint.address}</code>
                  </th>
                  <td>{endpoint.ready ? 'yes' : 'no'}</td>
                  <td>{endpoint.state}</td>
                  <td>{endpoint.inFlight}</td>
                  <td>{endpoint.queued.toFixed(1)}</td>
                  <td className={`breaker-${endpoint.breaker.toLowerCase()}`}>{endpoint.breaker.replace('_', '-').toLowerCase()}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ))}
    </div>
  );
}

import { useMutation, useQuery } from '@apollo/client/react';
import { useId, useState, type FormEvent } from 'react';
import type { Session } from '../auth/session';
import { graphql } from '../gql';
import type { Scope } from '../gql/graphql';
import { describeError } from '../graph/errors';
import { formatMicros, parseMoney } from '../money';
import { ErrorNotice, Loading } from '../ui/notices';

const API_KEYS = graphql(`
  query ApiKeys {
    me {
      id
      apiKeys { id name scopes prefix createdAt lastUsedAt revokedAt }
      spendLimits { apiKeyId daily monthly spentToday spentThisMonth reserved }
    }
  }
`);

const CREATE_API_KEY = graphql(`
  mutation CreateApiKey($name: String!, $scopes: [Scope!]!) {
    createApiKey(name: $name, scopes: $scopes) {
      secret
      apiKey { id name scopes prefix createdAt lastUsedAt revokedAt }
    }
  }
`);

const REVOKE_API_KEY = graphql(`
  mutation RevokeApiKey($id: ID!) {
    revokeApiKey(id: $id) { id revokedAt }
  }
`);

const SET_SPEND_LIMIT = graphql(`
  mutation SetSpendLimit($apiKeyId: ID!, $dailyMicros: Micros, $monthlyMicros: Micros) {
    setApiKeySpendLimit(apiKeyId: $apiKeyId, dailyMicros: $dailyMicros, monthlyMicros: $monthlyMicros) { apiKeyId daily monthly spentToday spentThisMonth reserved }
  }
`);

/** The scopes a key can be given, as the graph names them and as a person reads them. */
const SCOPES: { scope: Scope; name: string; what: string }[] = [
  { scope: 'INFERENCE_INVOKE', name: 'inference:invoke', what: 'run completions and embeddings' },
  { scope: 'KNOWLEDGE_READ', name: 'knowledge:read', what: 'read documents, search and ask' },
  { scope: 'KNOWLEDGE_WRITE', name: 'knowledge:write', what: 'add and delete documents' },
  { scope: 'BILLING_READ', name: 'billing:read', what: 'read balances, usage and invoices' },
  { scope: 'ADMIN', name: 'admin', what: 'operate the platform' },
];

const date = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : 'never');

export function ApiKeys({ session, currency }: { session: Session; currency: string }) {
  const keys = useQuery(API_KEYS, { errorPolicy: 'all' });
  const [create, creating] = useMutation(CREATE_API_KEY);
  const [revoke] = useMutation(REVOKE_API_KEY);
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<Scope[]>(['INFERENCE_INVOKE']);
  const [secret, setSecret] = useState<{ name: string; value: string } | null>(null);
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const ids = useId();
  const offered = SCOPES.filter((s) => s.scope !== 'ADMIN' || session.scopes.includes('admin'));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      const result = await create({ variables: { name, scopes } });
      const created = result.data?.createApiKey;
      if (created) {
        setSecret({ name: created.apiKey.name, value: created.secret });
        setCopied(false);
        setName('');
        await keys.refetch();
      }
    } catch (failure) {
      setError(describeError(failure));
    }
  };

  const copy = async () => {
    if (!secret) return;
    await navigator.clipboard.writeText(secret.value).then(
      () => setCopied(true),
      () => setError('The browser did not allow copying: select the secret and copy it by hand.'),
    );
  };

  const revokeKey = async (id: string, keyName: string) => {
    if (!window.confirm(`Revoke “${keyName}”? Requests made with it will be refused from now on.`)) return;
    setError(null);
    await revoke({ variables: { id } }).catch((failure: unknown) => setError(describeError(failure)));
  };

  const limits = new Map((keys.data?.me?.spendLimits ?? []).map((l) => [l.apiKeyId, l]));
  return (
    <section aria-labelledby={`${ids}-title`}>
      <h2 id={`${ids}-title`}>API keys</h2>
      <form className="api-key-form" onSubmit={submit} aria-label="Create an API key">
        <div className="field">
          <label htmlFor={`${ids}-name`}>Key name</label>
          <input id={`${ids}-name`} type="text" required value={name} onChange={(e) => setName(e.target.value)} />
        </div>
        <fieldset>
          <legend>Scopes</legend>
          {offered.map((s) => (
            <div key={s.scope} className="check">
              <input
                id={`${ids}-${s.scope}`}
                type="checkbox"
                checked={scopes.includes(s.scope)}
                onChange={(e) => setScopes(e.target.checked ? [...scopes, s.scope] : scopes.filter((x) => x !== s.scope))}
              />
              <label htmlFor={`${ids}-${s.scope}`}>
                <code>{s.name}</code>: {s.what}
              </label>
            </div>
          ))}
        </fieldset>
        <button type="submit" disabled={creating.loading || scopes.length === 0}>
          {creating.loading ? 'Creating…' : 'Create key'}
        </button>
      </form>
      {secret && (
        <div className="notice secret" role="status">
          <p>
            The secret of “{secret.name}”, shown this once: copy it now and send it as <code>Authorization: Bearer &lt;secret&gt;</code>.
          </p>
          <p className="row">
            <code className="secret-value" data-testid="api-key-secret">
              {secret.value}
            </code>
            <button type="button" onClick={() => void copy()}>
              {copied ? 'Copied' : 'Copy'}
            </button>
            <button type="button" className="secondary" onClick={() => setSecret(null)}>
              Done
            </button>
          </p>
        </div>
      )}
      {error && (
        <p className="notice notice-error" role="alert">
          {error}
        </p>
      )}
      <ErrorNotice error={keys.error} />
      {keys.loading && !keys.data ? (
        <Loading what="API keys" />
      ) : (keys.data?.me?.apiKeys ?? []).length === 0 ? (
        <p className="hint">No API keys yet.</p>
      ) : (
        <ul className="api-keys">
          {keys.data?.me?.apiKeys.map((key) => (
            <li key={key.id} className={key.revokedAt ? 'revoked' : undefined}>
              <div className="row">
                <strong>{key.name}</strong> <code>{key.prefix}…</code>
                <span className="hint">{key.scopes.map((s) => SCOPES.find((x) => x.scope === s)?.name ?? s).join(', ')}</span>
                <span className="hint">
                  created {date(key.createdAt)} · last used {date(key.lastUsedAt)}
                </span>
                {key.revokedAt ? (
                  <span className="hint">revoked {date(key.revokedAt)}</span>
                ) : (
                  <button type="button" className="secondary small" onClick={() => void revokeKey(key.id, key.name)}>
                    Revoke<span className="visually-hidden"> {key.name}</span>
                  </button>
                )}
              </div>
              {!key.revokedAt && <SpendLimit apiKeyId={key.id} keyName={key.name} limit={limits.get(key.id)} currency={currency} />}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

type Limit = { daily?: number | null; monthly?: number | null; spentToday: number; spentThisMonth: number; reserved: number };

/** A key's daily and monthly caps (empty: no cap), with what it spent. */
function SpendLimit({ apiKeyId, keyName, limit, currency }: { apiKeyId: string; keyName: string; limit?: Limit; currency: string }) {
  const [setLimit, { loading }] = useMutation(SET_SPEND_LIMIT, { refetchQueries: [API_KEYS] });
  const shown = (micros: number | null | undefined) => (micros == null ? '' : formatMicros(micros, currency).replace(/^\$/, ''));
  const [daily, setDaily] = useState(shown(limit?.daily));
  const [monthly, setMonthly] = useState(shown(limit?.monthly));
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);
  const ids = useId();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    try {
      await setLimit({ variables: { apiKeyId, dailyMicros: parseMoney(daily), monthlyMicros: parseMoney(monthly) } });
      setMessage({ error: false, text: 'Saved.' });
    } catch (failure) {
      setMessage({ error: true, text: failure instanceof RangeError ? `${failure.message}.` : describeError(failure) });
    }
  };

  return (
    <form className="spend-limit row" onSubmit={submit} aria-label={`Spend limits of ${keyName}`}>
      <div className="field inline">
        <label htmlFor={`${ids}-day`}>Daily cap ({currency})</label>
        <input id={`${ids}-day`} inputMode="decimal" placeholder="none" value={daily} onChange={(e) => setDaily(e.target.value)} />
      </div>
      <div className="field inline">
        <label htmlFor={`${ids}-month`}>Monthly cap ({currency})</label>
        <input id={`${ids}-month`} inputMode="decimal" placeholder="none" value={monthly} onChange={(e) => setMonthly(e.target.value)} />
      </div>
      <button type="submit" className="secondary small" disabled={loading}>
        Save caps
      </button>
      {limit && (
        <span className="hint">
          spent today {formatMicros(limit.spentToday, currency)}, this month {formatMicros(limit.spentThisMonth, currency)}
          {limit.reserved ? `, ${formatMicros(limit.reserved, currency)} held` : ''}
        </span>
      )}
      {message && (
        <span className={message.error ? 'error-text' : 'hint'} role={message.error ? 'alert' : 'status'}>
          {message.text}
        </span>
      )}
    </form>
  );
}

import { useQuery } from '@apollo/client/react';
import { useMemo } from 'react';
import type { Session } from '../auth/session';
import { graphql } from '../gql';
import { formatCount, formatMicros } from '../money';
import { ErrorNotice, Loading } from '../ui/notices';
import { ApiKeys } from './api-keys';
import { UsageByDayChart, UsageByModel } from './usage-chart';

// Each part is read on its own (billing may be down while auth answers), and any of them may be null.
export const ACCOUNT = graphql(`
  query Account($from: DateTime!, $to: DateTime!) {
    me {
      id
      balance { currency total granted toppedUp reserved available }
      byDay: usage(from: $from, to: $to, groupBy: DAY) { key requests promptTokens completionTokens amount }
      byModel: usage(from: $from, to: $to, groupBy: MODEL) { key requests promptTokens completionTokens amount }
      invoices(first: 12) {
        month
        currency
        total
        lines { model requests promptCacheHitTokens promptCacheMissTokens completionTokens amount }
      }
    }
  }
`);

const DAYS = 30;

export function AccountPage({ session }: { session: Session }) {
  // The last 30 UTC days, today included; fixed for the page's life so the query is not re-issued on each render.
  const period = useMemo(() => {
    const to = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() + 1));
    return { from: new Date(to.getTime() - DAYS * 86_400_000), to };
  }, []);
  const { data, loading, error } = useQuery(ACCOUNT, { variables: { from: period.from.toISOString(), to: period.to.toISOString() }, errorPolicy: 'all' });
  const me = data?.me;
  const balance = me?.balance;
  const currency = balance?.currency ?? 'USD';

  return (
    <div className="account">
      <h1>Account</h1>
      <p className="hint">
        {session.user.name} · {session.user.email}
      </p>
      <ErrorNotice error={error} />

      <section aria-labelledby="balance-title">
        <h2 id="balance-title">Balance</h2>
        {loading && !data ? (
          <Loading what="the balance" />
        ) : balance ? (
          <dl className="balance">
            <div className="available">
              <dt>Available</dt>
              <dd data-testid="available" data-micros={balance.available}>
                {formatMicros(balance.available, currency)}
              </dd>
            </div>
            <div>
              <dt>Free credit</dt>
              <dd>{formatMicros(balance.granted, currency)}</dd>
            </div>
            <div>
              <dt>Topped up</dt>
              <dd>{formatMicros(balance.toppedUp, currency)}</dd>
            </div>
            <div>
              <dt>Held by running requests</dt>
              <dd>{formatMicros(balance.reserved, currency)}</dd>
            </div>
          </dl>
        ) : (
          !error && <p className="notice">The balance cannot be read right now.</p>
        )}
      </section>

      <section aria-labelledby="usage-title">
        <h2 id="usage-title">Usage, last {DAYS} days</h2>
        {me?.byDay && me.byDay.length > 0 ? (
          <>
            <UsageByDayChart buckets={me.byDay} from={period.from} to={period.to} currency={currency} />
            <details>
              <summary>Usage by day as a table</summary>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Day (UTC)</th>
                    <th scope="col">Requests</th>
                    <th scope="col">Prompt tokens</th>
                    <th scope="col">Completion tokens</th>
                    <th scope="col">Cost</th>
                  </tr>
                </thead>
                <tbody>
                  {me.byDay.map((b) => (
                    <tr key={b.key}>
                      <th scope="row">{b.key}</th>
                      <td>{formatCount(b.requests)}</td>
                      <td>{formatCount(b.promptTokens)}</td>
                      <td>{formatCount(b.completionTokens)}</td>
                      <td>{formatMicros(b.amount, currency)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </details>
            <h3>By model</h3>
            <UsageByModel buckets={me.byModel ?? []} currency={currency} />
          </>
        ) : (
          !loading && <p className="hint">No usage in the last {DAYS} days.</p>
        )}
      </section>

      <section aria-labelledby="invoices-title">
        <h2 id="invoices-title">Invoices</h2>
        {me?.invoices && me.invoices.length > 0
          ? me.invoices.map((invoice) => (
              <table key={invoice.month} className="invoice">
                <caption>
                  {invoice.month}: {formatMicros(invoice.total, invoice.currency)}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Model</th>
                    <th scope="col">Requests</th>
                    <th scope="col">Cached prompt tokens</th>
                    <th scope="col">Prompt tokens</th>
                    <th scope="col">Completion tokens</th>
                    <th scope="col">Amount</th>
                  </tr>
                </thead>
                <tbody>
                  {invoice.lines.map((line) => (
                    <tr key={line.model}>
                      <th scope="row">{line.model}</th>
                      <td>{formatCount(line.requests)}</td>
                      <td>{formatCount(line.promptCacheHitTokens)}</td>
                      <td>{formatCount(line.promptCacheMissTokens)}</td>
                      <td>{formatCount(line.completionTokens)}</td>
                      <td>{formatMicros(line.amount, invoice.currency)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ))
          : !loading && <p className="hint">No invoices yet: a month appears once it has usage.</p>}
      </section>

      <ApiKeys session={session} currency={currency} />
    </div>
  );
}

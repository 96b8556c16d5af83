/**
 * Safelist mode (GATEWAY_SAFELIST=true): the gateway runs only the operations
 * of a persisted query manifest (GATEWAY_SAFELIST_FILE, Apollo's format, as
 * written by `@apollo/generate-persisted-query-manifest`). A request names a
 * registered operation by its id in `extensions.persistedQuery.sha256Hash`
 * (what Apollo Client's persisted query link sends), or sends a registered
 * document in `query` (compared without insignificant whitespace and
 * comments); anything else is refused with PERSISTED_QUERY_NOT_IN_SAFELIST
 * before it is parsed. Every process reads the file at start: changing the
 * list is a redeploy, like changing the schema.
 */
import { readFileSync } from 'node:fs';
import { GraphQLError, stripIgnoredCharacters } from 'graphql';
import { ConfigError, type Env } from '../../lib/config';
import { ErrorCode } from '../../lib/errors';
import type { SourceRequest } from '../pipeline/feature';

export const MANIFEST_FORMAT = 'apollo-persisted-query-manifest';

export interface ManifestOperation {
  id: string;
  body: string;
  name: string;
  type: 'query' | 'mutation' | 'subscription';
}

export class Safelist {
  private readonly byId = new Map<string, string>();
  private readonly bodies = new Set<string>();
  private readonly normalized = new Set<string>();

  constructor(operations: readonly ManifestOperation[]) {
    for (const operation of operations) {
      this.byId.set(operation.id, operation.body);
      this.bodies.add(operation.body);
      this.normalized.add(normalize(operation.body) ?? operation.body);
    }
  }

  get size(): number {
    return this.byId.size;
  }

  /**
   * The document the request runs: its own when that is registered, the
   * registered one when it sends only an id; otherwise the refusal. A request
   * with neither a document nor an id is left to Apollo Server to answer.
   */
  resolve(request: SourceRequest): string | GraphQLError | undefined {
    const id = persistedQueryHash(request.extensions);
    if (typeof request.query === 'string' && request.query !== '') {
      if (this.bodies.has(request.query) || this.normalized.has(normalize(request.query) ?? '')) return request.query;
      return notListed(id ? `an unregistered document (with the id "${id}")` : 'an unregistered document', id);
    }
    if (id === undefined) return undefined;
    return this.byId.get(id) ?? notListed(`the unregistered id "${id}"`, id);
  }
}

function notListed(got: string, id: string | undefined): GraphQLError {
  return new GraphQLError(
    `the operation is not in the safelist: this gateway runs only the operations of its persisted query manifest; expected a registered id in extensions.persistedQuery.sha256Hash or a registered document in "query", but got ${got}`,
    { extensions: { code: ErrorCode.PersistedQueryNotInSafelist, ...(id === undefined ? {} : { id }) } },
  );
}

/** `extensions.persistedQuery.sha256Hash` when the request has one. */
export function persistedQueryHash(extensions: unknown): string | undefined {
  const persisted = (extensions as { persistedQuery?: { sha256Hash?: unknown } } | null | undefined)?.persistedQuery;
  return typeof persisted?.sha256Hash === 'string' ? persisted.sha256Hash : undefined;
}

/** The document without what does not change its meaning; undefined when it does not even lex (so it cannot match). */
function normalize(document: string): string | undefined {
  try {
    return stripIgnoredCharacters(document);
  } catch {
    return undefined;
  }
}

/** The operations of a manifest, or a ConfigError naming the file and what is wrong in it. */
export function parseManifest(text: string, file: string): ManifestOperation[] {
  let manifest: { format?: unknown; version?: unknown; operations?: unknown };
  try {
    manifest = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${file} is not a persisted query manifest: expected JSON, but got a parse error (${(error as Error).message})`);
  }
  if (manifest?.format !== MANIFEST_FORMAT || manifest.version !== 1 || !Array.isArray(manifest.operations)) {
    throw new ConfigError(
      `${file} is not a persisted query manifest: expected {"format": "${MANIFEST_FORMAT}", "version": 1, "operations": [...]}, but got format ${JSON.stringify(manifest?.format)}, version ${JSON.stringify(manifest?.version)}`,
    );
  }
  const seen = new Map<string, string>();
  return manifest.operations.map((operation: Partial<ManifestOperation>, index: number) => {
    const valid =
      typeof operation?.id === 'string' &&
      operation.id !== '' &&
      typeof operation.body === 'string' &&
      operation.body !== '' &&
      typeof operation.name === 'string' &&
      (operation.type === 'query' || operation.type === 'mutation' || operation.type === 'subscription');
    if (!valid) {
      throw new ConfigError(`${file}: operations[${index}] expects {id, body, name, type: "query" | "mutation" | "subscription"}, but got ${JSON.stringify(operation).slice(0, 200)}`);
    }
    const known = seen.get(operation.id!);
    if (known !== undefined && known !== operation.body) throw new ConfigError(`${file}: operations[${index}] reuses the id "${operation.id}" for a different body`);
    seen.set(operation.id!, operation.body!);
    return operation as ManifestOperation;
  });
}

/** The safelist when GATEWAY_SAFELIST is on (then GATEWAY_SAFELIST_FILE is required), else undefined; `builtIn` are the gateway's own operations, listed besides the file's. */
export function safelistFromEnv(env: Env, builtIn: readonly ManifestOperation[] = []): Safelist | undefined {
  if (!env.bool('GATEWAY_SAFELIST', false)) return undefined;
  const file = env.string('GATEWAY_SAFELIST_FILE');
  if (!file) throw new ConfigError('GATEWAY_SAFELIST=true expects GATEWAY_SAFELIST_FILE to name a persisted query manifest, but it is not set');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`GATEWAY_SAFELIST_FILE names ${file}, which cannot be read: ${(error as Error).message}`);
  }
  return new Safelist([...builtIn, ...parseManifest(text, file)]);
}

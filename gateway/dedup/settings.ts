import type { Env } from '../../lib/config';
import { DEFAULT_PUBLIC_FIELDS, parsePublicFields } from './public-operations';

export interface DedupSettings {
  /** Share identical subgraph fetches and identical inbound queries in flight (GATEWAY_DEDUP). @default true */
  enabled: boolean;
  /** Root fields whose answer is the same for every caller (GATEWAY_DEDUP_PUBLIC_FIELDS, comma-separated `Type.field`); see public-operations.ts. @default DEFAULT_PUBLIC_FIELDS */
  publicFields: ReadonlySet<string>;
}

export function dedupSettingsFromEnv(env: Env): DedupSettings {
  return {
    enabled: env.bool('GATEWAY_DEDUP', true),
    publicFields: parsePublicFields('GATEWAY_DEDUP_PUBLIC_FIELDS', env.string('GATEWAY_DEDUP_PUBLIC_FIELDS', DEFAULT_PUBLIC_FIELDS)),
  };
}

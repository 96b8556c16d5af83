import { envBool, envString } from '../../lib/config';
import { DEFAULT_PUBLIC_FIELDS, parsePublicFields } from './public-operations';

export interface DedupSettings {
  /** Share identical subgraph fetches and identical inbound queries in flight (GATEWAY_DEDUP). */
  enabled: boolean;
  /** Root fields whose answer is the same for every caller (GATEWAY_DEDUP_PUBLIC_FIELDS); see public-operations.ts. */
  publicFields: ReadonlySet<string>;
}

export function dedupSettingsFromEnv(): DedupSettings {
  return {
    enabled: envBool('GATEWAY_DEDUP', true),
    publicFields: parsePublicFields('GATEWAY_DEDUP_PUBLIC_FIELDS', envString('GATEWAY_DEDUP_PUBLIC_FIELDS', DEFAULT_PUBLIC_FIELDS)),
  };
}

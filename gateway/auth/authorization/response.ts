/**
 * Puts back what the filter took out: a `null` for each removed field,
 * propagated the way GraphQL propagates a null in a non-null position (to the
 * nearest nullable parent, up to `data` itself), and an UNAUTHENTICATED or
 * FORBIDDEN error for each field the caller may not see.
 */
import { isListType, isNonNullType, type GraphQLFormattedError, type GraphQLOutputType } from 'graphql';
import { denialError } from '../../../lib/scope-rules';
import { TYPENAME_KEY, type FilteredOperation, type Refusal, type Segment } from './filter';
import type { Caller } from './policy';

type Data = Record<string, unknown>;

export interface ResultLike {
  data?: Data | null;
  errors?: readonly GraphQLFormattedError[];
}

/** The result the caller gets: `result` (what the filtered operation returned) with the removed fields' nulls and errors. */
export function completeResult<T extends ResultLike>(filtered: FilteredOperation, caller: Caller, result: T): T & ResultLike & { errors: GraphQLFormattedError[] } {
  const errors = [...filtered.refusals.map((r) => refusalError(r, caller)), ...(result.errors ?? [])];
  if (result.data === null || (result.data === undefined && !filtered.empty)) return { ...result, errors };
  let data: Data | null = result.data ?? {};
  for (const removal of filtered.removals) {
    if (data && nullAt(data, removal.segments, 0)) data = null;
  }
  if (data) stripTypenames(data);
  return { ...result, data, errors };
}

/** Sets the removed field to null in `object`; true when `object` itself must become null. */
function nullAt(object: Data, segments: Segment[], i: number): boolean {
  const segment = segments[i];
  if (segment.types && !segment.types.has(object[TYPENAME_KEY] as string)) return false;
  if (i === segments.length - 1) {
    object[segment.key] = null;
    return isNonNullType(segment.type);
  }
  const child = object[segment.key];
  if (child === null || child === undefined) return false;
  if (!mustBeNull(child, segment.type, segments, i + 1)) return false;
  object[segment.key] = null;
  return isNonNullType(segment.type);
}

/** Walks a value of `type` (lists included) down to the objects the next segment applies to; true when the value must become null. */
function mustBeNull(value: unknown, type: GraphQLOutputType, segments: Segment[], i: number): boolean {
  if (value === null || value === undefined) return false;
  if (isNonNullType(type)) return mustBeNull(value, type.ofType, segments, i);
  if (isListType(type)) {
    const items = value as unknown[];
    for (let index = 0; index < items.length; index++) {
      if (!mustBeNull(items[index], type.ofType, segments, i)) continue;
      if (isNonNullType(type.ofType)) return true;
      items[index] = null;
    }
    return false;
  }
  return nullAt(value as Data, segments, i);
}

function stripTypenames(value: unknown): void {
  if (Array.isArray(value)) {
    for (const item of value) stripTypenames(item);
  } else if (value && typeof value === 'object') {
    const object = value as Data;
    delete object[TYPENAME_KEY];
    for (const child of Object.values(object)) stripTypenames(child);
  }
}

/** The error a caller sees for a field they may not see. */
export function refusalError(refusal: Refusal, caller: Caller): GraphQLFormattedError {
  return { ...denialError(`"${refusal.path.join('.')}" (${refusal.coordinate})`, refusal.coordinate, refusal.denial, caller), path: refusal.path };
}

import { GraphQLError, GraphQLScalarType, Kind } from 'graphql';

/** An instant as an ISO-8601 string in UTC; stored as epoch milliseconds. */
export const DateTimeScalar = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  description: 'An instant, as an ISO-8601 string in UTC (for example 2026-11-26T10:00:00.000Z).',
  serialize(value) {
    const date = value instanceof Date ? value : new Date(value as number | string);
    if (Number.isNaN(date.getTime())) throw new GraphQLError(`DateTime cannot represent ${JSON.stringify(value)}`);
    return date.toISOString();
  },
  parseValue(value) {
    return parseDate(value);
  },
  parseLiteral(ast) {
    if (ast.kind !== Kind.STRING) throw new GraphQLError(`DateTime expects an ISO-8601 string, but got a ${ast.kind}`);
    return parseDate(ast.value);
  },
});

function parseDate(value: unknown): Date {
  const date = typeof value === 'string' ? new Date(value) : new Date(NaN);
  if (Number.isNaN(date.getTime())) {
    throw new GraphQLError(`DateTime expects an ISO-8601 string such as "2026-11-26T10:00:00Z", but got ${JSON.stringify(value)}`);
  }
  return date;
}

/**
 * Money as an integer number of micro-units (1 USD = 1,000,000). Serialized as
 * a JSON number, which every client reads exactly up to 2^53 − 1 micro-units
 * (about 9 billion units); larger values are refused rather than rounded.
 */
export const MicrosScalar = new GraphQLScalarType<number, number>({
  name: 'Micros',
  description: 'An amount of money as an integer number of micro-units (1 USD = 1000000 micros).',
  serialize(value) {
    const n = typeof value === 'string' ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new GraphQLError(`Micros cannot represent ${JSON.stringify(value)}: not a safe integer`);
    return n;
  },
  parseValue(value) {
    return parseMicros(value);
  },
  parseLiteral(ast) {
    if (ast.kind !== Kind.INT) throw new GraphQLError(`Micros expects an integer literal, but got a ${ast.kind}`);
    return parseMicros(Number(ast.value));
  },
});

function parseMicros(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new GraphQLError(`Micros expects an integer number of micro-units (at most ${Number.MAX_SAFE_INTEGER}), but got ${JSON.stringify(value)}`);
  }
  return value;
}

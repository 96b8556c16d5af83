import { GraphQLError, GraphQLScalarType } from 'graphql';

/**
 * Sums of tokens and requests over months outgrow GraphQL's 32-bit Int; this
 * scalar serializes any non-negative safe integer as a JSON number. Output only.
 */
export const CountScalar = new GraphQLScalarType<number, number>({
  name: 'Count',
  description: 'A count (of tokens, of requests) summed over many requests: a non-negative integer, exact up to 2^53 − 1.',
  serialize(value) {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new GraphQLError(`Count cannot represent ${JSON.stringify(value)}: not a non-negative safe integer`);
    return value;
  },
  parseValue(value) {
    throw new GraphQLError(`Count is an output type, but got ${JSON.stringify(value)} as input`);
  },
  parseLiteral() {
    throw new GraphQLError('Count is an output type and cannot be given as input');
  },
});

/**
 * The plan cache is keyed by operation name and queryHash, not by the
 * document object or its printed text: a feature hands over a rewritten
 * document on every subscribe (found again by the hash, unprinted), and one
 * that narrows per caller gives its document a hash of its own (planned apart).
 */
import { parse } from 'graphql';
import { TICKS, ticksSupergraph } from './testing/ticks-subgraphs';

const { planner } = ticksSupergraph('http://ticks.invalid/graphql');

it('finds the plan of a document rewritten on every subscribe by its queryHash', () => {
  const first = planner.plan(parse(TICKS), undefined, 'hash-a');
  expect(planner.plan(parse(TICKS), undefined, 'hash-a')).toBe(first);
  expect(first.primary.serviceName).toBe('ticks');
});

it('plans apart the same text under another queryHash or operation name', () => {
  const document = parse(TICKS);
  const first = planner.plan(document, undefined, 'hash-b');
  expect(planner.plan(document, undefined, 'hash-c')).not.toBe(first);
  const named = parse(`subscription Named${TICKS.slice('subscription'.length)}`);
  expect(planner.plan(named, 'Named', 'hash-b')).not.toBe(first);
});

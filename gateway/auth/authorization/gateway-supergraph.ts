/**
 * The supergraph handed to @apollo/gateway and the subscription planner.
 *
 * Both build it with federation-internals' `Supergraph`, which refuses any
 * `@link(..., for: SECURITY)` feature it does not implement — the right
 * default, since ignoring one would leave fields open — and it implements
 * neither `authenticated` nor `requiresScopes`. Those two are enforced by
 * this gateway before @apollo/gateway sees an operation (feature.ts, on
 * every path), so they are passed on without their SECURITY purpose;
 * any other security feature (say `@policy`) still stops the gateway at start.
 */
import { Kind, parse, print, visit } from 'graphql';
import { ENFORCED_SPECS } from './policy';

export function supergraphForGateway(supergraphSdl: string): string {
  const document = parse(supergraphSdl);
  let changed = false;
  const result = visit(document, {
    Directive(node) {
      if (node.name.value !== 'link') return undefined;
      const url = node.arguments?.find((a) => a.name.value === 'url')?.value;
      if (url?.kind !== Kind.STRING || !ENFORCED_SPECS.test(url.value)) return undefined;
      changed = true;
      return { ...node, arguments: node.arguments?.filter((a) => a.name.value !== 'for') };
    },
  });
  return changed ? print(result) : supergraphSdl;
}

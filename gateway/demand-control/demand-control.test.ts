import path from 'node:path';
import { parse } from 'graphql';
import { supergraphForGateway } from '../auth/authorization/gateway-supergraph';
import { Env } from '../../lib/config';
import { checkCost, costDirectivesFromSupergraph, costPolicy, demandControlFromEnv, estimateCost } from './cost';
import { variablesWithDefaults } from '../pipeline/operation-variables';
import { SubscriptionPlanner } from '../subscriptions/planner';
import { composeSupergraph, readSupergraphConfig } from '../supergraph';

// The project's own graph: its @cost and @listSize as the subgraphs declare them.
const supergraph = composeSupergraph(readSupergraphConfig(path.resolve(__dirname, '..', '..', 'supergraph.yaml')));
const schema = new SubscriptionPlanner(supergraphForGateway(supergraph)).schema;
const directives = costDirectivesFromSupergraph(supergraph);
const cost = (query: string, variables: Record<string, unknown> = {}) => estimateCost(schema, directives, parse(query), undefined, variables, 10);

describe('estimateCost', () => {
  it('reads the composed directives', () => {
    expect(directives.listSizes.get('Query.search')).toEqual({ assumedSize: undefined, slicingArguments: ['k'] });
    expect(directives.fieldWeights.get('Mutation.complete')).toBe(100);
    expect(directives.listSizes.get('Query.models')).toEqual({ assumedSize: 16, slicingArguments: undefined });
  });

  it('weighs composite fields 1 and leaves 0, multiplying lists by their size', () => {
    expect(cost('{ models { id ready } }')).toBe(16); // assumedSize 16 × (1 + 0)
    expect(cost('{ me { id email } }')).toBe(1);
    expect(cost('{ me { documents(first: 100) { chunks(first: 50) { text } } } }')).toBe(1 + 100 * (1 + 50 * 1));
  });

  it('sizes a list by its slicing argument: literal, variable, or the argument default', () => {
    expect(cost('query($n: Int) { documents(first: $n) { id } }', { n: 7 })).toBe(7);
    expect(cost('{ documents { id } }')).toBe(20);
    expect(cost('{ search(query: "x", k: 3) { score chunk { text } } }')).toBe(3 * (1 + 1));
  });

  it('adds a mutation its base cost, and the weights the schema gives expensive fields', () => {
    expect(cost('mutation { complete(input: { messages: [{ role: "user", content: "hi" }] }) { text model { id } } }')).toBe(10 + 100 + 1);
  });

  it('counts fragments where they are spread, and nothing for __typename and introspection', () => {
    expect(cost('{ me { ...D } __typename } fragment D on User { documents(first: 2) { id } }')).toBe(1 + 2);
    expect(cost('{ __schema { types { name } } }')).toBe(0);
  });
});

describe('checkCost', () => {
  it('refuses over budget with COST_LIMIT and the estimate', () => {
    const error = checkCost(5101, { maxCost: 5000 });
    expect(error?.extensions).toMatchObject({ code: 'COST_LIMIT', estimatedCost: 5101, maxCost: 5000 });
    expect(error?.message).toMatch(/^the operation's estimated cost is 5101, over the limit of 5000/);
    expect(checkCost(5000, { maxCost: 5000 })).toBeUndefined();
  });
});

describe('costPolicy', () => {
  const undeclared = costDirectivesFromSupergraph('type Query { items: [String] }');
  const options = (env: Record<string, string>) => demandControlFromEnv(new Env(env));

  it("enforces the default budget on a graph that declares its costs, as Sluice's own does", () => {
    expect(costPolicy(directives, options({}))).toEqual({ mode: 'enforce', maxCost: 5000 });
  });

  it('only measures on a graph that declares no costs, unless a budget is configured or enforcement asked for', () => {
    expect(undeclared.fieldWeights.size + undeclared.typeWeights.size + undeclared.listSizes.size).toBe(0);
    expect(costPolicy(undeclared, options({}))).toEqual({ mode: 'measure', maxCost: 5000 });
    expect(costPolicy(undeclared, options({ GATEWAY_MAX_COST: '300' }))).toEqual({ mode: 'enforce', maxCost: 300 });
    expect(costPolicy(undeclared, options({ GATEWAY_COST_MODE: 'enforce' }))).toEqual({ mode: 'enforce', maxCost: 5000 });
    expect(costPolicy(directives, options({ GATEWAY_COST_MODE: 'measure', GATEWAY_MAX_COST: '300' }))).toEqual({ mode: 'measure', maxCost: 300 });
  });

  it('refuses a mode it does not know, naming the variable and what it expects', () => {
    expect(() => options({ GATEWAY_COST_MODE: 'strict' })).toThrow('GATEWAY_COST_MODE expects one of "auto", "enforce", "measure", but got "strict"');
  });
});

describe('variablesWithDefaults', () => {
  it('counts a variable the request leaves out at its declared default', () => {
    const document = parse('query($n: Int = 1000, $m: Int) { documents(first: $n) { id } }');
    expect(variablesWithDefaults(document, undefined, {})).toEqual({ n: 1000 });
    expect(variablesWithDefaults(document, undefined, { n: 3 })).toEqual({ n: 3 });
    expect(estimateCost(schema, directives, document, undefined, variablesWithDefaults(document, undefined, {}), 10)).toBe(1000);
  });
});

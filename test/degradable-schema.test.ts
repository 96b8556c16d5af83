/**
 * The rule that lets one subgraph fail without taking the others' data with
 * it (issue 21), checked over the composed supergraph.
 *
 * The gateway fetches an entity's fields from each subgraph that contributes
 * some in a fetch of its own. When that fetch fails, its fields are null, and
 * GraphQL carries a null in a non-null field up to the nearest nullable
 * parent. So:
 *  1. every field a subgraph adds to another subgraph's entity is nullable
 *     (`User.balance` non-null would null `me` with auth's email and name);
 *  2. a field returning a reference to another subgraph's entity is nullable
 *     when that entity has non-null fields the referring subgraph cannot
 *     resolve (`Document.owner { email }` non-null would null the document,
 *     then the whole `documents` list);
 *  3. every Query field is nullable: all subgraphs add fields to Query, and a
 *     null in a non-null root field nulls `data`, every other subgraph's root
 *     fields with it (`models` non-null would lose `me` when inference fails).
 * An entity's origin is the subgraph that hands it out from its own root
 * fields: the one that knows which ids exist. The others only attach fields to
 * a key (or, `resolvable: false`, only pass keys on).
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Kind, parse, type ConstDirectiveNode, type FieldDefinitionNode, type ObjectTypeDefinitionNode, type TypeNode } from 'graphql';
import { composeSupergraph, readSupergraphConfig } from '../gateway/supergraph';

const ROOT = path.resolve(__dirname, '..');
const ROOT_TYPES = ['Query', 'Mutation', 'Subscription'];

interface SupergraphType {
  name: string;
  /** Subgraph → whether it can resolve the type by key; absent: the subgraph does not define it. */
  graphs: Map<string, { key: boolean; resolvable: boolean }>;
  fields: FieldDefinitionNode[];
}

/** Every way the composed supergraph breaks the rule, one sentence each (empty: it degrades). */
function degradationViolations(supergraphSdl: string): string[] {
  const document = parse(supergraphSdl);
  const graphNames = new Map<string, string>();
  const types = new Map<string, SupergraphType>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.ENUM_TYPE_DEFINITION && definition.name.value === 'join__Graph') {
      for (const value of definition.values ?? []) graphNames.set(value.name.value, stringArgument(directives(value.directives, 'join__graph')[0], 'name') ?? value.name.value);
    }
  }
  for (const definition of document.definitions) {
    if (definition.kind === Kind.OBJECT_TYPE_DEFINITION) types.set(definition.name.value, supergraphType(definition, graphNames));
  }

  const owners = (type: SupergraphType, field: FieldDefinitionNode): string[] => {
    const joins = directives(field.directives, 'join__field').filter((join) => !booleanArgument(join, 'external'));
    return joins.length === 0 ? [...type.graphs.keys()] : joins.map((join) => graphNames.get(enumArgument(join, 'graph') ?? '') ?? '');
  };
  const isEntity = (type: SupergraphType | undefined) => !!type && [...type.graphs.values()].some((g) => g.key);

  // The entities each subgraph reaches from its root fields through its own fields, stopping at the first entity.
  const reached = new Map<string, Set<string>>();
  for (const graph of new Set(graphNames.values())) {
    const found = new Set<string>();
    const seen = new Set<string>();
    const queue = ROOT_TYPES.filter((name) => types.get(name)?.graphs.has(graph));
    while (queue.length > 0) {
      const type = types.get(queue.shift()!)!;
      for (const field of type.fields) {
        if (!owners(type, field).includes(graph)) continue;
        const target = types.get(namedType(field.type));
        if (!target || seen.has(target.name)) continue;
        seen.add(target.name);
        if (isEntity(target)) found.add(target.name);
        else queue.push(target.name);
      }
    }
    reached.set(graph, found);
  }

  const violations: string[] = [];
  const query = types.get('Query');
  for (const field of query?.fields ?? []) {
    if (field.type.kind === Kind.NON_NULL_TYPE) {
      violations.push(
        `Query.${field.name.value} (from ${owners(query!, field).join(', ')}) expects a nullable type, as every root field shares \`data\` with the other subgraphs' ones, but got ${typeText(field.type)}`,
      );
    }
  }
  const origins = new Map<string, string>();
  for (const type of types.values()) {
    if (!isEntity(type) || ROOT_TYPES.includes(type.name)) continue;
    const candidates = [...type.graphs].filter(([graph, g]) => g.key && g.resolvable && reached.get(graph)?.has(type.name)).map(([graph]) => graph);
    if (candidates.length !== 1) {
      violations.push(
        `entity ${type.name} expects exactly one origin (a subgraph resolving it by key and returning it from its root fields), but got ${candidates.length ? candidates.join(', ') : 'none'}`,
      );
      continue;
    }
    const origin = candidates[0];
    origins.set(type.name, origin);
    for (const field of type.fields) {
      const fieldOwners = owners(type, field);
      if (field.type.kind === Kind.NON_NULL_TYPE && !fieldOwners.includes(origin)) {
        violations.push(`${type.name}.${field.name.value} (from ${fieldOwners.join(', ')}) expects a nullable type on ${origin}'s entity ${type.name}, but got ${typeText(field.type)}`);
      }
    }
  }

  for (const parent of types.values()) {
    for (const field of parent.fields) {
      const target = types.get(namedType(field.type));
      const origin = target && origins.get(target.name);
      if (!target || !origin || field.type.kind !== Kind.NON_NULL_TYPE) continue;
      for (const graph of owners(parent, field).filter((g) => g !== origin)) {
        // Other subgraphs' non-null fields of the entity are rule 1's business.
        const missing = target.fields.filter((f) => f.type.kind === Kind.NON_NULL_TYPE && owners(target, f).includes(origin) && !owners(target, f).includes(graph)).map((f) => f.name.value);
        if (missing.length > 0) {
          violations.push(
            `${parent.name}.${field.name.value} (from ${graph}) expects a nullable type, since ${origin} resolves ${target.name}'s non-null ${missing.join(', ')}, but got ${typeText(field.type)}`,
          );
        }
      }
    }
  }
  return violations;
}

function supergraphType(definition: ObjectTypeDefinitionNode, graphNames: Map<string, string>): SupergraphType {
  const graphs = new Map<string, { key: boolean; resolvable: boolean }>();
  for (const join of directives(definition.directives, 'join__type')) {
    const graph = graphNames.get(enumArgument(join, 'graph') ?? '') ?? '';
    const key = stringArgument(join, 'key') !== undefined;
    const resolvable = booleanArgument(join, 'resolvable') ?? true;
    const known = graphs.get(graph);
    graphs.set(graph, { key: key || !!known?.key, resolvable: (key && resolvable) || !!known?.resolvable });
  }
  return { name: definition.name.value, graphs, fields: [...(definition.fields ?? [])] };
}

function directives(nodes: readonly ConstDirectiveNode[] | undefined, name: string): ConstDirectiveNode[] {
  return (nodes ?? []).filter((d) => d.name.value === name);
}

function argument(directive: ConstDirectiveNode | undefined, name: string) {
  return directive?.arguments?.find((a) => a.name.value === name)?.value;
}

function stringArgument(directive: ConstDirectiveNode | undefined, name: string): string | undefined {
  const value = argument(directive, name);
  return value?.kind === Kind.STRING ? value.value : undefined;
}

function enumArgument(directive: ConstDirectiveNode, name: string): string | undefined {
  const value = argument(directive, name);
  return value?.kind === Kind.ENUM ? value.value : undefined;
}

function booleanArgument(directive: ConstDirectiveNode, name: string): boolean | undefined {
  const value = argument(directive, name);
  return value?.kind === Kind.BOOLEAN ? value.value : undefined;
}

function namedType(type: TypeNode): string {
  return type.kind === Kind.NAMED_TYPE ? type.name.value : namedType(type.type);
}

function typeText(type: TypeNode): string {
  if (type.kind === Kind.NAMED_TYPE) return type.name.value;
  return type.kind === Kind.LIST_TYPE ? `[${typeText(type.type)}]` : `${typeText(type.type)}!`;
}

const projectSupergraph = () => composeSupergraph(readSupergraphConfig(path.join(ROOT, 'supergraph.yaml')));

it('the composed supergraph degrades: no subgraph can null another subgraph’s data', () => {
  expect(degradationViolations(projectSupergraph())).toEqual([]);
});

it('names the field that would take another subgraph’s data down, for each kind of crossing', () => {
  // The project's schemas with the two nulls this rule exists for turned back into non-null.
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-degradable-'));
  try {
    for (const subgraph of readSupergraphConfig(path.join(ROOT, 'supergraph.yaml'))) {
      const copy = path.join(dir, path.relative(ROOT, subgraph.schemaFile));
      mkdirSync(path.dirname(copy), { recursive: true });
      cpSync(subgraph.schemaFile, copy);
    }
    cpSync(path.join(ROOT, 'supergraph.yaml'), path.join(dir, 'supergraph.yaml'));
    const edit = (file: string, from: RegExp, to: string) => {
      const text = readFileSync(path.join(dir, file), 'utf8');
      expect(text).toMatch(from);
      writeFileSync(path.join(dir, file), text.replace(from, to));
    };
    edit('subgraphs/billing/schema.graphql', /balance: Balance /, 'balance: Balance! ');
    edit('subgraphs/knowledge/schema.graphql', /owner: User\n/, 'owner: User!\n');
    edit('subgraphs/inference/schema.graphql', /models: \[Model!\] /, 'models: [Model!]! ');
    const violations = degradationViolations(composeSupergraph(readSupergraphConfig(path.join(dir, 'supergraph.yaml'))));
    expect(violations).toEqual([
      "Query.models (from inference) expects a nullable type, as every root field shares `data` with the other subgraphs' ones, but got [Model!]!",
      "User.balance (from billing) expects a nullable type on auth's entity User, but got Balance!",
      "Document.owner (from knowledge) expects a nullable type, since auth resolves User's non-null email, name, createdAt, apiKeys, but got User!",
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

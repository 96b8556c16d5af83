// graphql-ws publishes `graphql-ws/use/ws` only through package.json "exports",
// which this project's `moduleResolution: node` does not read; the runtime
// (Node, tsx, jest) does. This maps the subpath to its type declarations.
declare module 'graphql-ws/use/ws' {
  export * from 'graphql-ws/dist/use/ws';
}

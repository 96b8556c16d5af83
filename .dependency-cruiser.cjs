// The layout's boundaries, written where the build can check them (`npm run lint:deps`).
// Each rule is named for the boundary it guards; its comment says why the boundary exists and what to do instead,
// and the `err-long` report prints both with the import that broke it (from → to).
// Paths are relative to the repository root, as dependency-cruiser reports them.

/** Code that exists only for tests: test folders, testing helpers beside a module, and any *.test.ts or *.spec.ts (the web app's). */
const TEST_CODE = '(^|/)(test|testing)/|\\.(test|spec)\\.tsx?$';
/** Packages and node modules that speak a wire protocol: the gpu-server's core must stay usable without any of them. */
const TRANSPORT_MODULES = ['(^|/)node_modules/(@grpc/grpc-js|@grpc/proto-loader|undici|ws)/', '^(node:)?(http|https|http2)$'];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-import-cycles',
      comment:
        'Modules that import each other cannot be read, tested or loaded one at a time (and CommonJS hands one of them a half-built exports object). ' +
        'Move what both need into a third module that both import, or pass it in as a parameter.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'production-imports-test-code',
      comment:
        'Production code must not depend on test helpers (test/, testing/, *.test.ts, *.spec.ts): they are not built for production and may change with the tests. ' +
        'Move what production needs out of the testing folder into the module it belongs to; test code may import production code, not the reverse.',
      severity: 'error',
      from: { pathNot: [TEST_CODE, '^(bench|web)/'] },
      to: { path: TEST_CODE },
    },
    {
      name: 'triton-contract-imports-outside-itself',
      comment:
        'protocol/triton/ is the contract that the gpu-server and the inference subgraph share; it may import only node modules, packages and itself, ' +
        'so either side can use it without pulling in the other. Move the code it needs into protocol/triton/ or keep it out of the contract.',
      severity: 'error',
      from: { path: '^protocol/triton/' },
      to: { pathNot: ['^protocol/triton/', '(^|/)node_modules/'], dependencyTypesNot: ['core'] },
    },
    {
      name: 'gpu-server-core-imports-transport',
      comment:
        'gpu-server/core, backends and repository know nothing of gRPC or HTTP: the transports in gpu-server/grpc and gpu-server/http adapt the core, ' +
        'never the reverse. Give the core a plain function or interface and let the transport call it.',
      severity: 'error',
      from: { path: '^gpu-server/(core|backends|repository)/' },
      to: { path: ['^gpu-server/(grpc|http|metrics)/', '^gpu-server/(server|main)\\.ts$', ...TRANSPORT_MODULES] },
    },
    {
      name: 'subgraph-imports-another-subgraph',
      comment: 'Subgraphs are separate services that talk only through the graph or their HTTP routes. Move shared code to lib/ (or protocol/ for a wire contract) and import it from there.',
      severity: 'error',
      from: { path: '^subgraphs/([^/]+)/' },
      to: { path: '^subgraphs/', pathNot: '^subgraphs/$1/' },
    },
    {
      name: 'subgraph-imports-gateway',
      comment: 'A subgraph is a service behind the gateway and must run without it. Move shared code to lib/ and import it from there.',
      severity: 'error',
      from: { path: '^subgraphs/' },
      to: { path: '^gateway/' },
    },
    {
      name: 'subgraph-imports-gpu-server',
      comment: 'Subgraph production code reaches the gpu-server only over the wire, through the contract in protocol/triton/. Import from protocol/triton/ instead.',
      severity: 'error',
      from: { path: '^subgraphs/', pathNot: TEST_CODE },
      to: { path: '^gpu-server/' },
    },
    {
      name: 'subgraph-test-imports-gpu-server-internals',
      comment:
        "A subgraph's tests may start a real gpu-server through its public entry (gpu-server/server.ts) and gpu-server/testing/, nothing deeper, " +
        'so the gpu-server can change its insides without breaking them. Export what the test needs from gpu-server/testing/.',
      severity: 'error',
      from: { path: `^subgraphs/.*(${TEST_CODE})` },
      to: { path: '^gpu-server/', pathNot: '^gpu-server/(server\\.ts|testing/)' },
    },
    {
      name: 'gateway-imports-subgraph-or-gpu-server',
      comment:
        'The gateway reaches subgraphs only through the composed supergraph over HTTP and WebSocket, and never talks to the gpu-server. ' +
        'Move shared code to lib/; whole-stack tests that start subgraphs belong in the root test/.',
      severity: 'error',
      from: { path: '^gateway/' },
      to: { path: '^(subgraphs|gpu-server)/' },
    },
    {
      name: 'lib-imports-upper-layer',
      comment:
        'lib/ is the bottom layer that every service imports; it must not import a service (gateway/, subgraphs/, gpu-server/) or the Triton contract (protocol/). ' +
        'Move the shared piece down into lib/, or leave it in the service that owns it.',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^(gateway|subgraphs|gpu-server|protocol)/' },
    },
    {
      name: 'web-imports-outside-web',
      comment:
        'web/ is a browser app with its own build: it talks to the gateway over HTTP and WebSocket and imports only its own files and packages. ' +
        'Reach the data through the graph, or copy the small piece it needs into web/.',
      severity: 'error',
      from: { path: '^web/' },
      // An import that does not resolve (code generated by the web build, not yet run) is the web build's to report.
      to: { pathNot: ['^web/', '(^|/)node_modules/'], dependencyTypesNot: ['core'], couldNotResolve: false },
    },
  ],
  options: {
    doNotFollow: { path: '(^|/)node_modules/' },
    // Anchored at the root: packages' own dist/ folders are real dependencies and must stay visible to the rules.
    exclude: { path: '^(\\.data|coverage|dist|web/dist)/' },
    // Type-only imports count: a boundary crossed by a type still couples the two sides.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: './tsconfig.json' },
    // The TypeScript compiles to CommonJS, so packages resolve as `require` would load them.
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['require', 'node', 'default', 'types'],
      mainFields: ['main', 'types', 'typings'],
    },
    skipAnalysisNotInRules: true,
  },
};

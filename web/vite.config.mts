import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The web app's build, dev server and unit tests. The app lives under /app/ on
 * the gateway (Sandbox keeps /), so every asset URL is prefixed with it, and the
 * dev server forwards /graphql (HTTP and the graphql-ws upgrade) to the running
 * gateway (SLUICE_GATEWAY_URL, else the gateway's default port).
 */
const root = fileURLToPath(new URL('.', import.meta.url));
const gateway = process.env.SLUICE_GATEWAY_URL ?? `http://localhost:${process.env.GATEWAY_PORT ?? 4000}`;

export default defineConfig({
  root,
  base: '/app/',
  // No React plugin: Vite's own transformer compiles JSX (automatic runtime); the dev server reloads the page on change.
  oxc: { jsx: { runtime: 'automatic' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Hashed file names under dist/assets: the gateway serves them as immutable.
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
  },
  server: {
    proxy: { '/graphql': { target: gateway, ws: true, changeOrigin: true } },
  },
  test: {
    include: ['src/**/*.spec.ts'],
    environment: 'node',
  },
});

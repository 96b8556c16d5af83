# One image for every Sluice service; docker-compose.yml picks the entry point.

# The web app is built with the dev dependencies (Vite, codegen), which the final image leaves out.
FROM node:20-bookworm-slim AS web
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts
COPY . .
RUN npm run build:web

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts
COPY . .
COPY --from=web /app/web/dist web/dist
# Model weights are built by the project's own deterministic script, never downloaded.
RUN npx tsx gpu-server/model-builder/build-models.ts
USER node

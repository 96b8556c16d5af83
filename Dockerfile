# One image for every Sluice service; docker-compose.yml picks the entry point.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts
COPY . .
# Model weights are built by the project's own deterministic script, never downloaded.
RUN npx tsx gpu-server/model-builder/build-models.ts
USER node

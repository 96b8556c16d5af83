# One image for every Sluice service: the command picks the service
#   node dist/gateway/main.js | dist/subgraphs/<auth|billing|knowledge|inference>/main.js | dist/gpu-server/main.js
# (docker-compose.yml and deploy/kubernetes run it so). The image holds compiled JavaScript, the production
# dependencies and the model repository, and runs as the non-root user `node`.
#
#   docker build -t sluice .

# Build: TypeScript to dist/ and the web app, both with the dev dependencies (tsc, Vite, codegen), and the
# model weights, made by the project's own deterministic script, never downloaded.
FROM node:20-bookworm-slim AS build
WORKDIR /app
# Native modules ship prebuilt binaries (onnxruntime-node's CPU build, usearch); install scripts would only
# fetch optional CUDA binaries (.npmrc).
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts
COPY . .
RUN npm run build:web && npm run build && npx tsx gpu-server/model-builder/build-models.ts

# Production dependencies alone, installed apart so the final stage copies no dev dependency.
FROM node:20-bookworm-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=dependencies /app/node_modules node_modules
COPY package.json ./
COPY --from=build /app/dist dist
# The gpu-server reads the repository from its working directory (GPU_SERVER_MODEL_REPOSITORY), and Triton's
# init container copies it from here (deploy/kubernetes/overlays/production).
COPY --from=build /app/gpu-server/model_repository gpu-server/model_repository
USER node
EXPOSE 4000
CMD ["node", "dist/gateway/main.js"]

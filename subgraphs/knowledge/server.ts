import path from 'node:path';
import { envInt } from '../../lib/config';
import { identityVerifierFromEnv } from '../../lib/identity';
import { connectRedis } from '../../lib/redis';
import { RunningService, ServiceConfig, startSubgraph } from '../../lib/subgraph-service';
import { DocumentStore } from './document-store';
import { Documents } from './documents';
import { KnowledgeContext, resolvers } from './resolvers';

export async function startKnowledge(config: ServiceConfig): Promise<RunningService> {
  const redis = connectRedis(config.redisUrl, config.log);
  const documents = new Documents(new DocumentStore(redis), {
    maxTitleChars: 200,
    maxContentBytes: envInt('KNOWLEDGE_MAX_DOCUMENT_BYTES', 512 * 1024, { min: 1 }),
    maxPage: 100,
  });
  return startSubgraph<KnowledgeContext>({
    name: 'knowledge',
    schemaFile: path.join(__dirname, 'schema.graphql'),
    resolvers,
    config,
    redis,
    verifier: identityVerifierFromEnv(),
    context: (base) => ({ ...base, documents }),
  });
}

import { DEFAULT_PORTS } from '../../lib/config';
import { runService } from '../../lib/run-service';
import { startKnowledge } from './server';

runService('knowledge', 'KNOWLEDGE_PORT', DEFAULT_PORTS.knowledge, startKnowledge);

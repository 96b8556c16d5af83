import { runService } from '../../lib/run-service';
import { startKnowledge } from './server';

runService('knowledge', startKnowledge);

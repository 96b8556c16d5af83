import { runService } from '../../lib/run-service';
import { startInference } from './server';

runService('inference', startInference);

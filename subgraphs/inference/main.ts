import { DEFAULT_PORTS } from '../../lib/config';
import { runService } from '../../lib/run-service';
import { startInference } from './server';

runService('inference', 'INFERENCE_PORT', DEFAULT_PORTS.inference, startInference);

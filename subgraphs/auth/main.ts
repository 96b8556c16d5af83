import { runService } from '../../lib/run-service';
import { startAuth } from './server';

runService('auth', startAuth);

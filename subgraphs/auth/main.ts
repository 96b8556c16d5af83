import { DEFAULT_PORTS } from '../../lib/config';
import { runService } from '../../lib/run-service';
import { startAuth } from './server';

runService('auth', 'AUTH_PORT', DEFAULT_PORTS.auth, startAuth);

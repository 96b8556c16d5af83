import { runService } from '../../lib/run-service';
import { startBilling } from './server';

runService('billing', startBilling);

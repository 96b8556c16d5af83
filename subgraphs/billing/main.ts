import { DEFAULT_PORTS } from '../../lib/config';
import { runService } from '../../lib/run-service';
import { startBilling } from './server';

runService('billing', 'BILLING_PORT', DEFAULT_PORTS.billing, startBilling);

/**
 * GET /v1/models and /v1/models/{id}: the `models` and `model(id)` queries,
 * answered as OpenAI's model objects. The graph keeps no creation time for a
 * model, so `created` is 0; `owned_by` is the platform.
 */
import type { ServerResponse } from 'node:http';
import { sendJson } from '../../lib/http-service';
import type { GatewayContext } from '../auth/context';
import { OpenAiError } from './errors';
import type { GraphOperations } from './graph-operations';
import { MODEL, MODELS } from './operations';

const modelObject = (id: string) => ({ id, object: 'model', created: 0, owned_by: 'sluice' });
const noParam = () => null;

export async function serveModels(graph: GraphOperations, res: ServerResponse, context: GatewayContext): Promise<void> {
  const { data, headers } = await graph.execute(MODELS, {}, context, noParam);
  const models = (data.models as Array<{ id: string }> | null) ?? [];
  sendJson(res, 200, { object: 'list', data: models.map((m) => modelObject(m.id)) }, headers);
}

export async function serveModel(graph: GraphOperations, res: ServerResponse, id: string, context: GatewayContext): Promise<void> {
  const { data, headers } = await graph.execute(MODEL, { id }, context, noParam);
  const model = data.model as { id: string } | null;
  if (!model) throw new OpenAiError(404, 'invalid_request_error', 'model_not_found', `The model ${JSON.stringify(id)} does not exist: GET /v1/models lists the ones Sluice serves`, 'model');
  sendJson(res, 200, modelObject(model.id), headers);
}

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PROJECT_REPOSITORY } from '../testing/temp-repository';
import { buildModels } from './build-models';

it('builds only the models a repository declares, leaving no directories for the others', async () => {
  const repository = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-build-'));
  try {
    fs.mkdirSync(path.join(repository, 'sluice-embed'));
    fs.copyFileSync(path.join(PROJECT_REPOSITORY, 'sluice-embed', 'config.pbtxt'), path.join(repository, 'sluice-embed', 'config.pbtxt'));
    await buildModels(repository);
    expect(fs.readdirSync(repository)).toEqual(['sluice-embed']);
    expect(fs.existsSync(path.join(repository, 'sluice-embed', '1', 'model.onnx'))).toBe(true);
  } finally {
    fs.rmSync(repository, { recursive: true, force: true });
  }
});

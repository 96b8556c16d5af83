import { envBool, envInt } from './config';

describe('config', () => {
  afterEach(() => {
    delete process.env.TEST_VALUE;
  });

  it('reads integers within bounds and defaults when unset', () => {
    expect(envInt('TEST_VALUE', 7)).toBe(7);
    process.env.TEST_VALUE = '42';
    expect(envInt('TEST_VALUE', 7, { max: 100 })).toBe(42);
  });

  it('names the variable, the range and the value when an integer is wrong', () => {
    process.env.TEST_VALUE = '4.5';
    expect(() => envInt('TEST_VALUE', 1, { min: 1, max: 10 })).toThrow('TEST_VALUE expects an integer between 1 and 10, but got "4.5"');
  });

  it('reads booleans and refuses anything else', () => {
    process.env.TEST_VALUE = 'off';
    expect(envBool('TEST_VALUE', true)).toBe(false);
    process.env.TEST_VALUE = 'maybe';
    expect(() => envBool('TEST_VALUE', true)).toThrow('TEST_VALUE expects true or false, but got "maybe"');
  });
});

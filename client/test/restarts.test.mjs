import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

const require = createRequire(import.meta.url);
const { RestartBudget } = require('../../out/lib/restarts.js');

test('three automatic restarts in three minutes, not a fourth', () => {
  const budget = new RestartBudget();
  assert.deepEqual(
    [0, 1000, 2000, 3000].map((t) => budget.crashed(t)),
    [true, true, true, false],
  );
});

test('crashes older than the window no longer count', () => {
  const budget = new RestartBudget(3, 180000);
  for (const t of [0, 1000, 2000]) assert.equal(budget.crashed(t), true);
  assert.equal(budget.crashed(181500), true); // the crashes at 0 and 1000 have left the window
  assert.equal(budget.crashed(182000), true); // 2000, 181500, 182000
  assert.equal(budget.crashed(182500), true); // 2000 left: 181500, 182000, 182500
  assert.equal(budget.crashed(183000), false); // four within the window
});

test('a manual restart starts a fresh budget', () => {
  const budget = new RestartBudget(1, 1000);
  assert.equal(budget.crashed(0), true);
  assert.equal(budget.crashed(10), false);
  budget.reset();
  assert.equal(budget.crashed(20), true);
});

import assert from "node:assert/strict";
import { BASELINE_TASKS } from "../lib/baselines/baseline.ts";
import {
  ANSWERED_TASKS,
  answerOf,
  TASK_FAMILIES,
  TASKS,
  tasksAnswering,
} from "../lib/data/tasks.ts";
import { EVAL_TASKS } from "../lib/eval/score.ts";
import { INFER_TASKS } from "../lib/generate/infer.ts";

Deno.test("the task lists derive from the one table of families", () => {
  assert.deepEqual(Object.keys(TASK_FAMILIES), [...TASKS]);
  // Report order: item families, then rating, then text (docs/method.md section 10).
  assert.deepEqual(ANSWERED_TASKS, ["sequential", "direct", "rating", "explanation", "review"]);
  assert.deepEqual(EVAL_TASKS, ANSWERED_TASKS);
  assert.deepEqual(INFER_TASKS, ANSWERED_TASKS);
  assert.deepEqual(BASELINE_TASKS.pop, ["sequential", "direct"]);
  assert.deepEqual(BASELINE_TASKS.mean, ["rating"]);
  assert.equal(answerOf("profile"), null);
  assert.equal(answerOf("no-such-task"), null);
  assert.deepEqual(tasksAnswering("text"), ["explanation", "review"]);
});

Deno.test("every family with prompts has a seen and a held-out template; profile has documents", () => {
  for (const task of TASKS) {
    const family = TASK_FAMILIES[task];
    if ("prompts" in family) {
      const templates = family.prompts.templates;
      assert.ok(templates.some((t) => !t.heldOut), `${task}: no seen template`);
      assert.ok(templates.some((t) => t.heldOut), `${task}: no held-out template`);
      assert.notEqual(family.answer, null, `${task}: prompts without an answer`);
    } else {
      assert.equal(family.answer, null);
      assert.ok("documents" in family, `${task}: neither prompts nor documents`);
    }
  }
});

import assert from "node:assert/strict";
import { clipRating, mae, RatingErrors, rmse } from "../lib/metrics/rating.ts";

Deno.test("predictions are clipped to the rating scale before the error", () => {
  assert.equal(clipRating(7, [1, 5]), 5);
  assert.equal(clipRating(-2, [1, 5]), 1);
  assert.equal(clipRating(3.5, [1, 5]), 3.5);
  assert.equal(clipRating(7, null), 7);
});

Deno.test("RMSE and MAE by hand, with clipping", () => {
  // predictions 4.5, 7 (-> 5), 0 (-> 1) against 5, 4, 2: errors -0.5, 1, -1
  const predicted = [4.5, 7, 0];
  const actual = [5, 4, 2];
  // RMSE = sqrt((0.25 + 1 + 1) / 3) = sqrt(0.75)
  assert.ok(Math.abs(rmse(predicted, actual, [1, 5]) - Math.sqrt(0.75)) < 1e-12);
  // MAE = (0.5 + 1 + 1) / 3 = 5/6
  assert.ok(Math.abs(mae(predicted, actual, [1, 5]) - 5 / 6) < 1e-12);
  // without clipping: errors -0.5, 3, -2 -> MAE 5.5 / 3
  assert.ok(Math.abs(mae(predicted, actual, null) - 5.5 / 3) < 1e-12);
});

Deno.test("streaming errors equal the batch ones; nothing added gives NaN", () => {
  const errors = new RatingErrors([1, 5]);
  assert.ok(Number.isNaN(errors.rmse));
  errors.add(2, 4); // error -2
  errors.add(5, 4); // error 1
  assert.equal(errors.count, 2);
  assert.equal(errors.mae, 1.5);
  assert.equal(errors.rmse, Math.sqrt(2.5));
  assert.throws(() => rmse([1], [1, 2], null), RangeError);
});

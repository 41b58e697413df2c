/**
 * Rating-prediction errors: RMSE and MAE over predictions clipped to the rating scale
 * [min, max] first (a prediction of 7 on a 1..5 scale counts as 5), as P5 evaluates them.
 *
 * @module
 */

/** Returns `value` clipped to `scale` = [min, max]; without a scale, `value` itself. */
export function clipRating(value: number, scale: readonly [number, number] | null): number {
  if (scale === null) return value;
  return Math.min(scale[1], Math.max(scale[0], value));
}

/**
 * Running squared and absolute errors, for scoring a stream of predictions without keeping
 * them.
 *
 * @example
 * ```ts
 * const errors = new RatingErrors([1, 5]);
 * errors.add(6, 4); // clipped to 5: error 1
 * errors.add(3, 4); // error -1
 * errors.rmse; // 1
 * ```
 */
export class RatingErrors {
  readonly #scale: readonly [number, number] | null;
  #squared = 0;
  #absolute = 0;
  #count = 0;

  /** `scale`: the rating scale predictions are clipped to, or null for no clipping. */
  constructor(scale: readonly [number, number] | null) {
    this.#scale = scale;
  }

  /** Adds one prediction and its true rating. */
  add(predicted: number, actual: number): void {
    const error = clipRating(predicted, this.#scale) - actual;
    this.#squared += error * error;
    this.#absolute += Math.abs(error);
    this.#count++;
  }

  /** How many predictions were added. */
  get count(): number {
    return this.#count;
  }

  /** Root mean squared error; NaN when nothing was added. */
  get rmse(): number {
    return Math.sqrt(this.#squared / this.#count);
  }

  /** Mean absolute error; NaN when nothing was added. */
  get mae(): number {
    return this.#absolute / this.#count;
  }
}

function errorsOf(
  predicted: readonly number[],
  actual: readonly number[],
  scale: readonly [number, number] | null,
): RatingErrors {
  if (predicted.length !== actual.length) {
    throw new RangeError(`${predicted.length} predictions for ${actual.length} ratings`);
  }
  const errors = new RatingErrors(scale);
  for (let i = 0; i < predicted.length; i++) errors.add(predicted[i], actual[i]);
  return errors;
}

/**
 * Returns the RMSE of `predicted` against `actual` (same length), predictions clipped to
 * `scale`.
 *
 * @example
 * ```ts
 * rmse([5, 2], [4, 4], [1, 5]); // sqrt((1 + 4) / 2)
 * ```
 */
export function rmse(
  predicted: readonly number[],
  actual: readonly number[],
  scale: readonly [number, number] | null,
): number {
  return errorsOf(predicted, actual, scale).rmse;
}

/** Returns the MAE of `predicted` against `actual` (same length), predictions clipped to `scale`. */
export function mae(
  predicted: readonly number[],
  actual: readonly number[],
  scale: readonly [number, number] | null,
): number {
  return errorsOf(predicted, actual, scale).mae;
}

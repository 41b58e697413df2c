/**
 * The project's prompt templates: the wording of profile documents and of the five task families
 * (rating, sequential, explanation, review, direct), several templates each, at least one per
 * family held out of training for zero-shot evaluation. A template turns a small, already
 * selected input (entity strings, texts) into segments; choosing what goes in is `textualize.ts`.
 *
 * @module
 */

import type { Segment, Task, TemplateInfo } from "./types.ts";
import { type EntityRef, SegmentBuilder } from "./segments.ts";

/** A named group of entities: a user feature (`age_band`: [25-34]) or favourite attribute. */
export interface NamedValues {
  /** Column name; shown with `_` read as a space. */
  name: string;
  values: EntityRef[];
}

/** What a prompt may say about its user. */
export interface UserInfo {
  /** The source user id. */
  id: string;
  /** Features from the users table, one group per feature. */
  features: NamedValues[];
  /** Attribute values the user chose most (favourite brands, categories). */
  favourites: NamedValues[];
}

/** The item a rating, explanation or review prompt is about. */
export interface ItemInfo {
  entity: string;
  /** Its attributes (brand, category), one group per attribute. */
  attrs: NamedValues[];
}

/** Input of profile documents: items sampled from each preference period, oldest first. */
export interface ProfileInput {
  user: UserInfo;
  long: string[];
  medium: string[];
  short: string[];
}
/** Input of sequential prompts: the history, oldest first (at least one item). */
export interface SequentialInput {
  user: UserInfo;
  history: string[];
}
/** Input of direct prompts: recent items, most recent first. */
export interface DirectInput {
  user: UserInfo;
  recent: string[];
}
/** Input of rating prompts. */
export interface RatingInput {
  user: UserInfo;
  item: ItemInfo;
  /** Smallest and largest rating of the training data. */
  scale: [number, number];
  /** Items chosen just before, most recent first (may be empty). */
  recent: string[];
}
/** Input of explanation prompts; `rating` is the user's rating text when known. */
export interface ExplanationInput {
  user: UserInfo;
  item: ItemInfo;
  rating?: string;
}
/** Input of review prompts: the review text (already capped) to summarize. */
export interface ReviewInput {
  user: UserInfo;
  item: ItemInfo;
  review: string;
}

/** One template: its id, whether it is held out, and how it writes its input. */
export interface Template<I> {
  id: string;
  heldOut: boolean;
  render(input: I): Segment[];
}

/** Inputs by task family. */
export interface TaskInputs {
  profile: ProfileInput;
  rating: RatingInput;
  sequential: SequentialInput;
  explanation: ExplanationInput;
  review: ReviewInput;
  direct: DirectInput;
}

const item = (entity: string): EntityRef => ({ entity, kind: "item" });
const items = (entities: readonly string[]): EntityRef[] => entities.map(item);
/** A history listed oldest first, each item with its age (the last is 0). */
const oldestFirst = (history: readonly string[]): EntityRef[] =>
  history.map((entity, i) => ({ entity, kind: "item", age: history.length - 1 - i }));
/** Recent items listed most recent first, each with its age (the first is 0). */
const newestFirst = (recent: readonly string[]): EntityRef[] =>
  recent.map((entity, age) => ({ entity, kind: "item", age }));
const spaced = (name: string): string => name.replaceAll("_", " ");

/** `age band 25-34, occupation nurse and region north` (values of one name joined by "and"). */
function namedList(b: SegmentBuilder, groups: readonly NamedValues[], separator = ", "): void {
  groups.forEach((group, i) => {
    if (i > 0) b.text(i === groups.length - 1 ? " and " : separator);
    b.text(`${spaced(group.name)} `).list(group.values, ", ", " or ");
  });
}

/** ` (age band 25-34, occupation nurse)` or nothing without features. */
function featureNote(b: SegmentBuilder, user: UserInfo): void {
  if (user.features.length === 0) return;
  b.text(" (");
  namedList(b, user.features);
  b.text(")");
}

/** ` (brand Lumora, category Hair Care)` or nothing without attributes. */
function attrNote(b: SegmentBuilder, info: ItemInfo): void {
  if (info.attrs.length === 0) return;
  b.text(" (");
  namedList(b, info.attrs);
  b.text(")");
}

function favouriteSentence(b: SegmentBuilder, user: UserInfo, lead: string): void {
  if (user.favourites.length === 0) return;
  b.text(lead);
  user.favourites.forEach((group, i) => {
    if (i > 0) b.text("; ");
    b.text(`${spaced(group.name)}: `).list(group.values);
  });
  b.text(".");
}

const PROFILE: Template<ProfileInput>[] = [
  {
    id: "profile-1",
    heldOut: false,
    render: ({ user, long, medium, short }) => {
      const b = new SegmentBuilder().text(`Profile of user ${user.id}.`);
      if (user.features.length > 0) {
        b.text(" ");
        user.features.forEach((group, i) => {
          if (i > 0) b.text(" ");
          b.text(`${spaced(group.name)[0].toUpperCase()}${spaced(group.name).slice(1)}: `)
            .list(group.values).text(".");
        });
      }
      favouriteSentence(b, user, " Favourite ");
      if (long.length > 0) b.text(" Long-term preferences: ").list(items(long)).text(".");
      if (medium.length > 0) b.text(" Medium-term preferences: ").list(items(medium)).text(".");
      if (short.length > 0) b.text(" Short-term preferences: ").list(items(short)).text(".");
      return b.build();
    },
  },
  {
    id: "profile-2",
    heldOut: false,
    render: ({ user, long, medium, short }) => {
      const b = new SegmentBuilder().text(`About user ${user.id}`);
      featureNote(b, user);
      b.text(".");
      favouriteSentence(b, user, " Their usual picks by ");
      if (long.length > 0) {
        b.text(" Across all their visits they chose ").list(items(long)).text(".");
      }
      if (medium.length > 0) {
        b.text(" During the months before their latest visits they chose ").list(items(medium))
          .text(".");
      }
      if (short.length > 0) b.text(" Most recently they chose ").list(items(short)).text(".");
      return b.build();
    },
  },
];

const SEQUENTIAL: Template<SequentialInput>[] = [
  {
    id: "seq-1",
    heldOut: false,
    render: ({ user, history }) =>
      new SegmentBuilder().text(`User ${user.id} interacted with these items in this order: `)
        .list(oldestFirst(history)).text(". The next item they will choose is ").answer().text(".")
        .build(),
  },
  {
    id: "seq-2",
    heldOut: false,
    render: ({ user, history }) =>
      new SegmentBuilder().text(`Purchase history of user ${user.id}, oldest first: `)
        .list(oldestFirst(history), "; ", "; ").text(
          `. Predict the item user ${user.id} picks next: `,
        )
        .answer().build(),
  },
  {
    id: "seq-3",
    heldOut: false,
    render: ({ user, history }) => {
      const aged = oldestFirst(history);
      const latest = aged[aged.length - 1];
      const b = new SegmentBuilder().text(`The latest choice of user ${user.id} was `)
        .entity(latest.entity, latest.kind, latest.age);
      if (aged.length > 1) b.text(", and before that ").list(aged.slice(0, -1).reverse());
      return b.text(`. What does user ${user.id} choose next? `).answer().build();
    },
  },
  {
    id: "seq-4",
    heldOut: true,
    render: ({ user, history }) =>
      new SegmentBuilder().text(`After choosing `).list(oldestFirst(history), ", then ", ", then ")
        .text(`, user ${user.id} went on to choose `).answer().text(".").build(),
  },
];

const DIRECT: Template<DirectInput>[] = [
  {
    id: "direct-1",
    heldOut: false,
    render: ({ user, recent }) => {
      const b = new SegmentBuilder().text(`User ${user.id}`);
      featureNote(b, user);
      if (recent.length > 0) b.text(" has shown interest in ").list(newestFirst(recent));
      else b.text(" is new here");
      return b.text(". Which item would you recommend to this user? ").answer().build();
    },
  },
  {
    id: "direct-2",
    heldOut: false,
    render: ({ user, recent }) => {
      const b = new SegmentBuilder().text(`We want to suggest one item to user ${user.id}.`);
      if (user.features.length > 0) {
        b.text(" What we know: ");
        namedList(b, user.features);
        b.text(".");
      }
      favouriteSentence(b, user, " Favourite ");
      if (recent.length > 0) {
        b.text(" Items they liked, most recent first: ").list(newestFirst(recent), "; ", "; ").text(
          ".",
        );
      }
      return b.text(" Our recommendation: ").answer().build();
    },
  },
  {
    id: "direct-3",
    heldOut: false,
    render: ({ user, recent }) => {
      const b = new SegmentBuilder().text(`Recommend an item for user ${user.id}`);
      featureNote(b, user);
      if (recent.length > 0) b.text(", who already owns ").list(newestFirst(recent));
      return b.text(". Recommended item: ").answer().build();
    },
  },
  {
    id: "direct-4",
    heldOut: true,
    render: ({ user, recent }) => {
      const b = new SegmentBuilder().text(`The item that best suits user ${user.id}`);
      featureNote(b, user);
      if (recent.length > 0) b.text(", whose earlier choices include ").list(newestFirst(recent));
      return b.text(", is ").answer().text(".").build();
    },
  },
];

const RATING: Template<RatingInput>[] = [
  {
    id: "rating-1",
    heldOut: false,
    render: ({ user, item: it, scale }) =>
      new SegmentBuilder().text(`How would user ${user.id} rate `).entity(it.entity, "item")
        .text(` on a scale from ${scale[0]} to ${scale[1]}? `).answer().build(),
  },
  {
    id: "rating-2",
    heldOut: false,
    render: ({ user, item: it, scale }) => {
      const b = new SegmentBuilder().text(`User ${user.id}`);
      featureNote(b, user);
      b.text(" bought ").entity(it.entity, "item");
      attrNote(b, it);
      return b.text(`. Predict the star rating (${scale[0]} to ${scale[1]}) they gave: `).answer()
        .build();
    },
  },
  {
    id: "rating-3",
    heldOut: false,
    render: ({ user, item: it, scale, recent }) => {
      const b = new SegmentBuilder().text(`Predict the score user ${user.id} gives `)
        .entity(it.entity, "item").text(` (${scale[0]} to ${scale[1]}).`);
      if (recent.length > 0) {
        b.text(" Their previous choices: ").list(newestFirst(recent)).text(".");
      }
      return b.text(" Score: ").answer().build();
    },
  },
  {
    id: "rating-4",
    heldOut: true,
    render: ({ user, item: it, scale }) =>
      new SegmentBuilder().text(`On a scale of ${scale[0]} to ${scale[1]}, user ${user.id} gave `)
        .entity(it.entity, "item").text(" a rating of ").answer().text(".").build(),
  },
];

const EXPLANATION: Template<ExplanationInput>[] = [
  {
    id: "explanation-1",
    heldOut: false,
    render: ({ user, item: it }) =>
      new SegmentBuilder().text(`Explain in one sentence what user ${user.id} thinks of `)
        .entity(it.entity, "item").text(". ").answer().build(),
  },
  {
    id: "explanation-2",
    heldOut: false,
    render: ({ user, item: it, rating }) => {
      const b = new SegmentBuilder().text(`User ${user.id} `);
      if (rating !== undefined) {
        b.text("gave ").entity(it.entity, "item").text(
          ` ${rating} star${rating === "1" ? "" : "s"}.`,
        );
      } else b.text("reviewed ").entity(it.entity, "item").text(".");
      return b.text(" Their reason: ").answer().build();
    },
  },
  {
    id: "explanation-3",
    heldOut: false,
    render: ({ user, item: it }) => {
      const b = new SegmentBuilder().text(`What would user ${user.id} say about `)
        .entity(it.entity, "item");
      attrNote(b, it);
      return b.text("? ").answer().build();
    },
  },
  {
    id: "explanation-4",
    heldOut: true,
    render: ({ user, item: it, rating }) => {
      const b = new SegmentBuilder().text(`Write the reason user ${user.id} gives for `);
      if (rating !== undefined) b.text(`rating `).entity(it.entity, "item").text(` ${rating}`);
      else b.text("their opinion of ").entity(it.entity, "item");
      return b.text(": ").answer().build();
    },
  },
];

const REVIEW: Template<ReviewInput>[] = [
  {
    id: "review-1",
    heldOut: false,
    render: ({ user, item: it, review }) =>
      new SegmentBuilder().text(`User ${user.id} wrote this review of `).entity(it.entity, "item")
        .text(`: "${review}" Give the review a short title: `).answer().build(),
  },
  {
    id: "review-2",
    heldOut: false,
    render: ({ user, item: it, review }) =>
      new SegmentBuilder().text(`Review by user ${user.id} about `).entity(it.entity, "item")
        .text(`: ${review}\nSummary: `).answer().build(),
  },
  {
    id: "review-3",
    heldOut: false,
    render: ({ user, item: it, review }) => {
      const b = new SegmentBuilder().text(
        `Summarize in a few words what user ${user.id} thinks of `,
      )
        .entity(it.entity, "item");
      attrNote(b, it);
      return b.text(`, given their review: "${review}" `).answer().build();
    },
  },
  {
    id: "review-4",
    heldOut: true,
    render: ({ user, item: it, review }) =>
      new SegmentBuilder().text(`"${review}" In short, the verdict of user ${user.id} on `)
        .entity(it.entity, "item").text(" is: ").answer().build(),
  },
];

/**
 * Every template, by task family.
 *
 * @example
 * ```ts
 * const user: UserInfo = { id: "12", features: [], favourites: [] };
 * const [seen] = TEMPLATES.sequential.filter((t) => !t.heldOut);
 * seen.render({ user, history: ["Rose Shampoo"] }); // segments with an answer marker
 * ```
 */
export const TEMPLATES: { [T in Task]: Template<TaskInputs[T]>[] } = {
  profile: PROFILE,
  rating: RATING,
  sequential: SEQUENTIAL,
  explanation: EXPLANATION,
  review: REVIEW,
  direct: DIRECT,
};

/** The manifest's template list for `tasks`, in task order then template order. */
export function templateInfos(tasks: readonly Task[]): TemplateInfo[] {
  return tasks.flatMap((task) =>
    (TEMPLATES[task] as Template<unknown>[]).map((t) => ({ id: t.id, task, heldOut: t.heldOut }))
  );
}

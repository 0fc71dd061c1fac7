import { z } from "zod";

/** Task states. */
export const TASK_STATUSES = ["todo", "in_progress", "done"] as const;
/** A task's state. */
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** Most characters in a title. */
export const TITLE_CHARS_MAX = 200;
/** Most characters in a description. */
export const DESCRIPTION_CHARS_MAX = 10_000;
/** Most tasks one `GET /tasks` page returns. */
export const LIST_LIMIT_MAX = 1000;
/** Page size when `limit` is not given. */
export const LIST_LIMIT_DEFAULT = 100;
/** Most tasks one `POST /tasks/bulk` creates. */
export const BULK_TASKS_MAX = 10_000;
/** Longest cursor string accepted. */
export const CURSOR_CHARS_MAX = 512;

const title = z.string().min(1, "must not be empty").max(
  TITLE_CHARS_MAX,
  `must be at most ${TITLE_CHARS_MAX} characters`,
);
const description = z.string().max(
  DESCRIPTION_CHARS_MAX,
  `must be at most ${DESCRIPTION_CHARS_MAX} characters`,
);
const status = z.enum(TASK_STATUSES);
const priority = z.number().int("must be an integer").min(0).max(5);

/** Body of `POST /tasks` (and each element of a bulk create). */
export const TaskCreate = z.strictObject({
  title,
  description: description.default(""),
  status: status.default("todo"),
  priority: priority.default(0),
});
/** A validated create or replace body. */
export type TaskInput = z.infer<typeof TaskCreate>;

/**
 * Body of `PUT /tasks/:id`: the whole task. Fields left out take their
 * defaults. The read-only fields of a task may be sent back unchanged (so a
 * client can PUT what it got); an `id` that differs from the path is an error.
 */
export const TaskReplace = TaskCreate.extend({
  id: z.string().optional(),
  createdAt: z.string().optional(),
  updatedAt: z.string().optional(),
});

/** Body of `PATCH /tasks/:id`: any subset of the writable fields, at least one. */
export const TaskPatch = z.strictObject({
  title: title.optional(),
  description: description.optional(),
  status: status.optional(),
  priority: priority.optional(),
}).refine((p) => Object.keys(p).length > 0, { message: "patch must set at least one field" });
/** A validated patch. */
export type TaskPatchInput = z.infer<typeof TaskPatch>;

/** Body of `POST /tasks/bulk`. */
export const TaskBulk = z.strictObject({
  tasks: z.array(TaskCreate).min(1, "must hold at least one task").max(
    BULK_TASKS_MAX,
    `must hold at most ${BULK_TASKS_MAX} tasks`,
  ),
});

/** Query of `GET /tasks`. */
export const TaskListQuery = z.strictObject({
  limit: z.coerce.number().int("must be an integer").min(1).max(LIST_LIMIT_MAX).default(
    LIST_LIMIT_DEFAULT,
  ),
  cursor: z.string().min(1).max(CURSOR_CHARS_MAX).optional(),
  status: status.optional(),
});

/** A stored task as the API returns it. */
export const TaskSchema = z.object({
  id: z.string(),
  title: z.string(),
  description: z.string(),
  status,
  priority: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
/** A stored task. */
export type Task = z.infer<typeof TaskSchema>;

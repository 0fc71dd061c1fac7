import type { z } from "zod";

/** One field-level problem, as reported in a 400 body. */
export interface IssueBody {
  path: string;
  message: string;
  code: string;
}

/** The JSON error body every service answers with. */
export interface ErrorBody {
  error: { code: string; message: string; issues?: IssueBody[] };
}

/**
 * An error that maps to an HTTP status and a stable machine-readable code.
 * Throw it from handlers; the app's error handler renders it as JSON.
 */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly issues: IssueBody[] | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { issues?: IssueBody[]; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.issues = options.issues;
    this.headers = options.headers;
  }

  /** The JSON body for this error. */
  toBody(): ErrorBody {
    const error: ErrorBody["error"] = { code: this.code, message: this.message };
    if (this.issues !== undefined) error.issues = this.issues;
    return { error };
  }
}

/** Formats a zod issue path (`["tasks", 3, "title"]`) as `tasks[3].title`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** Converts zod issues into a 400 {@link HttpError} that names each offending field. */
export function validationError(
  issues: ReadonlyArray<z.core.$ZodIssue>,
  where = "body",
): HttpError {
  const list: IssueBody[] = [];
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        list.push({
          path: formatPath([...issue.path, key]),
          message: "unknown field",
          code: issue.code,
        });
      }
    } else {
      list.push({ path: formatPath(issue.path), message: issue.message, code: issue.code });
    }
  }
  const first = list[0];
  const summary = first === undefined
    ? `invalid ${where}`
    : `invalid ${where}: ${first.path === "" ? "" : first.path + ": "}${first.message}` +
      (list.length > 1 ? ` (and ${list.length - 1} more)` : "");
  return new HttpError(400, "validation_failed", summary, { issues: list });
}

import { z } from "zod";
import {
  TaskBulk,
  TaskCreate,
  TaskListQuery,
  TaskPatch,
  TaskReplace,
  TaskSchema,
} from "./schemas.ts";

function schema(s: z.ZodType, io: "input" | "output" = "input") {
  const json = z.toJSONSchema(s, { io, unrepresentable: "any" }) as Record<string, unknown>;
  delete json.$schema;
  return json;
}

const errorBody = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "string" },
        message: { type: "string" },
        issues: {
          type: "array",
          items: {
            type: "object",
            properties: {
              path: { type: "string" },
              message: { type: "string" },
              code: { type: "string" },
            },
          },
        },
      },
    },
  },
};

const json = (ref: string) => ({ content: { "application/json": { schema: { $ref: ref } } } });
const error = (description: string) => ({ description, ...json("#/components/schemas/Error") });
const idParam = { name: "id", in: "path", required: true, schema: { type: "string" } };

/** The OpenAPI 3.1 document of the tasks API, built from the zod schemas. */
export function openApiDocument(): Record<string, unknown> {
  const query = schema(TaskListQuery) as { properties: Record<string, unknown> };
  return {
    openapi: "3.1.0",
    info: { title: "tasks", version: "0.1.0", description: "Task CRUD API." },
    paths: {
      "/tasks": {
        post: {
          summary: "Create a task",
          requestBody: { required: true, ...json("#/components/schemas/TaskCreate") },
          responses: {
            "201": { description: "Created", ...json("#/components/schemas/Task") },
            "400": error("Invalid body"),
            "413": error("Body too large"),
          },
        },
        get: {
          summary: "List tasks (cursor pagination)",
          parameters: Object.entries(query.properties).map(([name, s]) => ({
            name,
            in: "query",
            required: false,
            schema: s,
          })),
          responses: {
            "200": {
              description: "A page",
              content: {
                "application/json": {
                  schema: {
                    type: "object",
                    properties: {
                      items: { type: "array", items: { $ref: "#/components/schemas/Task" } },
                      nextCursor: { type: ["string", "null"] },
                    },
                  },
                },
              },
            },
            "400": error("Invalid query or cursor"),
          },
        },
      },
      "/tasks/bulk": {
        post: {
          summary: "Create many tasks at once (seeding)",
          requestBody: { required: true, ...json("#/components/schemas/TaskBulk") },
          responses: {
            "201": {
              description: "Created",
              content: {
                "application/json": {
                  schema: {
                    type: "object",
                    properties: {
                      count: { type: "integer" },
                      ids: { type: "array", items: { type: "string" } },
                    },
                  },
                },
              },
            },
            "400": error("Invalid body"),
          },
        },
      },
      "/tasks/{id}": {
        parameters: [idParam],
        get: {
          summary: "Get a task",
          responses: {
            "200": { description: "The task", ...json("#/components/schemas/Task") },
            "404": error("No such task"),
          },
        },
        put: {
          summary: "Replace a task",
          requestBody: { required: true, ...json("#/components/schemas/TaskReplace") },
          responses: {
            "200": { description: "The task", ...json("#/components/schemas/Task") },
            "400": error("Invalid body"),
            "404": error("No such task"),
          },
        },
        patch: {
          summary: "Update some fields of a task",
          requestBody: { required: true, ...json("#/components/schemas/TaskPatch") },
          responses: {
            "200": { description: "The task", ...json("#/components/schemas/Task") },
            "400": error("Invalid body"),
            "404": error("No such task"),
          },
        },
        delete: {
          summary: "Delete a task",
          responses: { "204": { description: "Deleted" }, "404": error("No such task") },
        },
      },
    },
    components: {
      schemas: {
        Task: schema(TaskSchema, "output"),
        TaskCreate: schema(TaskCreate),
        TaskReplace: schema(TaskReplace),
        TaskPatch: schema(TaskPatch),
        TaskBulk: schema(TaskBulk),
        Error: errorBody,
      },
    },
  };
}

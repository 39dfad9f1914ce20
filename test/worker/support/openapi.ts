import { api } from "./identity.ts";

export interface Operation {
  method: string;
  path: string;
  permission: string | undefined;
}

/** Every operation the Worker documents, read from its generated OpenAPI document. */
export async function documentedOperations(): Promise<Operation[]> {
  const response = await api("/api/v1/openapi.json");
  const doc = (await response.json()) as { paths: Record<string, Record<string, { "x-permission"?: string }>> };
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({ method: method.toUpperCase(), path, permission: operation["x-permission"] })),
  );
}

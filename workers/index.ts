import { buildApp } from "./app";

export { CallSession } from "../durable-objects/call-session";

const app = buildApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;

/** Session ids are UUIDs; each names one call object (idFromName), reached from the Worker through its RPC type. */
export const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const isSessionId = (value: string | undefined | null): value is string => !!value && SESSION_ID.test(value);

export function callObject(env: Env, sessionId: string) {
  return env.CALL_SESSION.get(env.CALL_SESSION.idFromName(sessionId));
}

/**
 * Feedback for every action: a short message in a polite live region (errors assertive), gone after a few seconds.
 */
export interface Notice {
  id: number;
  kind: "success" | "error" | "info";
  text: string;
}

class Notices {
  items = $state<Notice[]>([]);
  private next = 1;

  push(kind: Notice["kind"], text: string): void {
    const id = this.next++;
    this.items = [...this.items, { id, kind, text }];
    setTimeout(() => this.dismiss(id), kind === "error" ? 8000 : 4000);
  }

  dismiss(id: number): void {
    this.items = this.items.filter((item) => item.id !== id);
  }
}

export const notices = new Notices();

/** Runs an action and says how it went: `done` on success, the error's message otherwise. */
export async function act<T>(done: string, action: () => Promise<T>): Promise<T | undefined> {
  try {
    const result = await action();
    notices.push("success", done);
    return result;
  } catch (error) {
    notices.push("error", error instanceof Error ? error.message : String(error));
    return undefined;
  }
}

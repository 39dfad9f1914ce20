/**
 * An object has one alarm and several deadlines want it (D1 retries, a web caller's grace period): the one owner of
 * it. A deadline only ever moves the alarm earlier, so no part can push back another's; the alarm handler runs
 * every part's due work and each part asks again for what is still ahead.
 */
export class AlarmSchedule {
  constructor(private readonly storage: DurableObjectStorage) {}

  /** Makes sure the alarm fires no later than `at`. */
  async wakeBy(at: number): Promise<void> {
    const alarm = await this.storage.getAlarm();
    if (alarm === null || alarm > at) await this.storage.setAlarm(at);
  }
}

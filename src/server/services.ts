import type { Database } from "./db/database.js";
import { TaskEventHub } from "./events/task-event-hub.js";
import type { Logger } from "./logger.js";
import { SystemService } from "./system/service.js";
import { TaskService } from "./tasks/service.js";
import { ViewService } from "./views/service.js";

export interface Services {
  db: Database;
  hub: TaskEventHub;
  tasks: TaskService;
  views: ViewService;
  system: SystemService;
}

export async function createServices(db: Database, log: Logger): Promise<Services> {
  // On a Postgres server other processes may write too; poll for their events as well.
  const hub = new TaskEventHub(db, log, db.kind === "postgres" ? 1000 : 0);
  await hub.start();
  return {
    db,
    hub,
    tasks: new TaskService(db, hub),
    views: new ViewService(db),
    system: new SystemService(db),
  };
}

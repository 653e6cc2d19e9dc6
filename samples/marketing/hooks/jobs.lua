-- Scheduled jobs of the sample app (app.json "hooks": {"schedules": [...]}). A job function gets
-- (ctx, job) with job = {name, cron, timezone}; it runs as the system, in its own transaction.
local M = {}

-- Weekday mornings: say how many requests are still drafts a week after they were created.
function M.stale_drafts(ctx, job)
  local week_ago = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 7 * 86400)
  local n = trellis.count("marketing_request", 'state = "draft" && created_at < "' .. week_ago .. '"')
  if n > 0 then
    trellis.log(n .. " marketing request(s) have been drafts for over a week", "warn")
  end
end

return M

-- Hooks of marketing_request (modules/channel-marketing). See runtime/hooks/README.md.
local M = {}

local REGIONS = {north = true, south = true, east = true, west = true}

-- s cut to at most n characters (not bytes: titles are often Chinese), marked with an ellipsis.
local function clip(s, n)
  if utf8.len(s) <= n then return s end
  return s:sub(1, utf8.offset(s, n) - 1) .. "…"
end

-- The requested material lines: [{"item": "brochure", "qty": 500, "region": "east"}, ...].
local function check_materials(list)
  if list == nil then return nil end
  if type(list) ~= "table" then return "must be a list of material lines" end
  if #list > 100 then return "at most 100 material lines" end
  for i, line in ipairs(list) do
    if type(line) ~= "table" then return ("line %d must be an object"):format(i) end
    if type(line.item) ~= "string" or line.item == "" or utf8.len(line.item) > 200 then
      return ("line %d: item must be a name of 1 to 200 characters"):format(i)
    end
    if math.type(line.qty) ~= "integer" or line.qty < 1 or line.qty > 1000000 then
      return ("line %d: qty must be a whole number from 1 to 1,000,000"):format(i)
    end
    if line.region ~= nil and not REGIONS[line.region] then
      return ("line %d: region must be north, south, east or west"):format(i)
    end
  end
  return nil
end

function M.validate(ctx, rec, old)
  local errors = {}
  local bad = check_materials(rec.materials)
  if bad then errors.materials = bad end
  if rec.start_date and rec.end_date and rec.end_date < rec.start_date then
    errors.end_date = "must not be before the start date / 结束日期不能早于开始日期"
  end
  if next(errors) then return errors end
end

-- Partners submit real budgets only.
function M.before_transition_submit(ctx, rec, t)
  if rec.budget <= 0 then
    trellis.error(422, "a request needs a budget above zero / 预算必须大于零", "budget")
  end
  rec.partner = rec.partner:match("^%s*(.-)%s*$")
end

-- Finance (and, above 50,000, the director) approved: one delivery task per material line,
-- assigned by region, and the reimbursement claim capped at the approved budget. Both belong
-- to the partner's org so that the partner follows them (a privileged hook: app.json).
function M.after_transition_finance_approve(ctx, rec, t)
  for i, line in ipairs(rec.materials or {}) do
    trellis.create("material_delivery_task", {
      request = rec.id, item = line.item, qty = line.qty, region = line.region or rec.region,
    }, {org = rec.org, owner = rec.owner})
  end
  trellis.create("reimbursement_claim", {
    title = rec.name .. " " .. clip(rec.title, 180), request = rec.id,  -- its hook sets the cap
  }, {org = rec.org, owner = rec.owner})
  trellis.log(("%s approved: %d delivery task(s) and a claim capped at %s"):format(
    rec.name, #(rec.materials or {}), tostring(rec.approved_budget)), {history = true})
end

return M

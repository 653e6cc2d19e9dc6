-- Hooks of reimbursement_claim (modules/channel-marketing).
local M = {}

-- The cap is the request's approved budget, set here (cap is read-only: nobody types it).
function M.before_create(ctx, rec)
  local req = trellis.get("marketing_request", rec.request)
  if req == nil or req.approved_budget == nil then
    trellis.error(409, "a claim needs an approved request / 报销需对应已批准的申请", "request")
  end
  rec.cap = req.approved_budget
end

-- Receipts: a list of up to 50 invoice numbers or uploaded files' ids (POST /api/v1/files).
local function check_receipts(list)
  if list == nil then return nil end
  if type(list) ~= "table" or (next(list) ~= nil and #list == 0) then
    return "must be a list of invoice numbers or file ids / 须为发票号或文件编号列表"
  end
  if #list > 50 then return "at most 50 receipts / 最多 50 张票据" end
  for i, v in ipairs(list) do
    if type(v) ~= "string" or v == "" or utf8.len(v) == nil or utf8.len(v) > 128 then
      return ("receipt %d must be a text of 1 to 128 characters / 第 %d 张票据须为 1 至 128 个字符"):format(i, i)
    end
  end
  return nil
end

-- A claim never exceeds its cap (the approved budget), whatever changes it.
function M.validate(ctx, rec, old)
  local bad = check_receipts(rec.receipts)
  if bad then return {receipts = bad} end
  if old ~= nil and old.request ~= rec.request then
    return {request = "a claim stays with its request / 报销申请不能改挂到其他申请"}
  end
  if rec.amount ~= nil and rec.amount > rec.cap then
    return {amount = ("may not exceed the approved budget %s / 不能超过批准预算 %s"):format(
      tostring(rec.cap), tostring(rec.cap))}
  end
end

-- Claims are for activities that ran: the request must be in execution.
function M.before_transition_submit(ctx, rec, t)
  if rec.receipts == nil or #rec.receipts == 0 then
    trellis.error(422, "attach at least one receipt / 请至少附一张票据", "receipts")
  end
  local req = trellis.get("marketing_request", rec.request)
  if req == nil or req.state ~= "in_execution" then
    trellis.error(409, "start the activity (in execution) before claiming / 活动开始执行后才能报销")
  end
end

-- Paid: the request is closed (privileged: the finance user closes it as the engine).
function M.after_transition_pay(ctx, rec, t)
  trellis.transition("marketing_request", rec.request, "close", nil,
    "reimbursement " .. rec.name .. " paid")
end

return M

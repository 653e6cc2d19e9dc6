-- Hooks of the marketing_request type (see runtime/hooks/README.md for every hook point and
-- the trellis module). A hook module returns a table of functions; Trellis calls them inside
-- the transaction of the change they belong to.
local M = {}

-- A zero budget passes the field's rule (min 0) while a request is a draft, but marketing
-- cannot review a request without money: refuse to submit it, naming the field.
function M.before_transition_submit(ctx, rec, t)
  if rec.budget <= 0 then
    trellis.error(422, "a request needs a budget above zero before it is submitted", "budget")
  end
  -- Partner names arrive from many channels: store them without surrounding spaces.
  rec.partner = rec.partner:match("^%s*(.-)%s*$")
end

return M

local M = {}
function M.before_create(ctx, rec)
  if rec.size == nil then rec.size = 1 end
end
return M

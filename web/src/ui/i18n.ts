// Every string the UI shows, in English and Simplified Chinese. Switch with setLang(); the choice is kept
// in localStorage and followed by the other tabs.
const en = {
  appName: "TinyIM",
  loading: "Loading…",
  login: "Log in",
  register: "Create account",
  username: "Username",
  password: "Password",
  nickname: "Nickname",
  noAccount: "No account yet? Create one",
  haveAccount: "Have an account? Log in",
  logout: "Log out",
  kickedTitle: "You were logged out",
  kickedBody: "This account logged in on another Web browser, or the session ended: {reason}",
  loginAgain: "Log in again",
  status_connecting: "Connecting…",
  status_online: "Online",
  status_offline: "Offline, reconnecting in {s}s",
  status_starting: "Starting…",
  status_loggedOut: "Logged out",
  status_kicked: "Logged out",
  reconnectNow: "Reconnect now",
  chats: "Chats",
  contacts: "Contacts",
  groups: "Groups",
  noChats: "No conversations yet. Find friends under Contacts.",
  pickChat: "Pick a conversation",
  back: "Back",
  send: "Send",
  typeMessage: "Type a message",
  attach: "Attach a file",
  dropHere: "Drop files here to send them",
  loadingOlder: "Loading older messages…",
  noOlder: "The beginning of this conversation",
  sending: "Sending…",
  failed: "Not sent: {error}",
  retry: "Retry",
  discard: "Delete",
  search: "Search",
  searchHint: "Username or user id",
  searchNone: "Nobody found",
  add: "Add friend",
  reasonHint: "Say hello (optional)",
  requestSent: "Request sent",
  nowFriends: "You are friends now",
  newFriends: "New friends",
  accept: "Accept",
  reject: "Reject",
  friends: "Friends",
  noFriends: "No friends yet",
  message: "Message",
  deleteFriend: "Delete",
  block: "Block",
  unblock: "Unblock",
  blocked: "Blocked",
  confirmDelete: "Delete {name} from your friends?",
  createGroup: "Create group",
  groupName: "Group name",
  pickMembers: "Members (friends)",
  joinGroup: "Join a group",
  groupIdHint: "Group id",
  join: "Request to join",
  joinPending: "Request sent; the owner decides",
  joinDone: "You joined the group",
  members: "Members",
  leave: "Leave group",
  remove: "Remove",
  owner: "Owner",
  admin: "Admin",
  joinRequests: "Join requests",
  approve: "Approve",
  groupOf: "Group {id}",
  userOf: "User {id}",
  you: "You",
  image: "[Image]",
  file: "[File] {name}",
  download: "Download",
  uploading: "Uploading {name}",
  hashing: "Preparing {name}",
  uploadFailed: "Upload of {name} failed: {error}",
  ev_friend_request: "{user} wants to be your friend{reason}",
  ev_friend_accepted: "{user} accepted your friend request. Say hi!",
  ev_friend_rejected: "{user} declined your friend request",
  ev_friend_added: "{user} added you as a friend",
  ev_group_created: "{user} created the group “{name}”",
  ev_group_join_request: "{user} asks to join {group}",
  ev_group_join_rejected: "Your request to join {group} was declined",
  ev_member_joined: "{member} joined the group",
  ev_member_left: "{member} left the group",
  ev_member_removed: "{member} was removed from the group",
  ev_removed_from_group: "You were removed from {group}",
  ev_unknown: "Notice: {event}",
  language: "中文",
  me: "Me",
  error: "Error: {message}",
  myId: "My id: {id}",
  groupSummary: "{count} members · id {id}",
  editNickname: "Change your nickname",
  fileSize: "{kib} KiB",
};
export type StringKey = keyof typeof en;

const zh: Record<StringKey, string> = {
  appName: "TinyIM",
  loading: "加载中…",
  login: "登录",
  register: "注册账号",
  username: "用户名",
  password: "密码",
  nickname: "昵称",
  noAccount: "还没有账号？注册一个",
  haveAccount: "已有账号？登录",
  logout: "退出登录",
  kickedTitle: "你已下线",
  kickedBody: "该账号已在另一个 Web 浏览器登录，或会话已结束：{reason}",
  loginAgain: "重新登录",
  status_connecting: "连接中…",
  status_online: "在线",
  status_offline: "已断开，{s} 秒后重连",
  status_starting: "启动中…",
  status_loggedOut: "未登录",
  status_kicked: "已下线",
  reconnectNow: "立即重连",
  chats: "聊天",
  contacts: "通讯录",
  groups: "群聊",
  noChats: "还没有会话。去通讯录添加好友吧。",
  pickChat: "选择一个会话",
  back: "返回",
  send: "发送",
  typeMessage: "输入消息",
  attach: "发送文件",
  dropHere: "拖放文件到这里发送",
  loadingOlder: "正在加载更早的消息…",
  noOlder: "会话从这里开始",
  sending: "发送中…",
  failed: "发送失败：{error}",
  retry: "重发",
  discard: "删除",
  search: "搜索",
  searchHint: "用户名或用户 ID",
  searchNone: "未找到用户",
  add: "加为好友",
  reasonHint: "打个招呼（可选）",
  requestSent: "已发送好友申请",
  nowFriends: "你们已经是好友了",
  newFriends: "新的朋友",
  accept: "接受",
  reject: "拒绝",
  friends: "好友",
  noFriends: "还没有好友",
  message: "发消息",
  deleteFriend: "删除",
  block: "拉黑",
  unblock: "取消拉黑",
  blocked: "黑名单",
  confirmDelete: "把 {name} 从好友中删除？",
  createGroup: "创建群聊",
  groupName: "群名称",
  pickMembers: "成员（好友）",
  joinGroup: "加入群聊",
  groupIdHint: "群 ID",
  join: "申请加入",
  joinPending: "申请已发送，等待群主审批",
  joinDone: "你已加入该群",
  members: "群成员",
  leave: "退出群聊",
  remove: "移出",
  owner: "群主",
  admin: "管理员",
  joinRequests: "入群申请",
  approve: "同意",
  groupOf: "群 {id}",
  userOf: "用户 {id}",
  you: "你",
  image: "[图片]",
  file: "[文件] {name}",
  download: "下载",
  uploading: "正在上传 {name}",
  hashing: "正在准备 {name}",
  uploadFailed: "{name} 上传失败：{error}",
  ev_friend_request: "{user} 请求添加你为好友{reason}",
  ev_friend_accepted: "{user} 通过了你的好友申请，打个招呼吧！",
  ev_friend_rejected: "{user} 拒绝了你的好友申请",
  ev_friend_added: "{user} 添加你为好友",
  ev_group_created: "{user} 创建了群聊“{name}”",
  ev_group_join_request: "{user} 申请加入 {group}",
  ev_group_join_rejected: "你加入 {group} 的申请被拒绝",
  ev_member_joined: "{member} 加入了群聊",
  ev_member_left: "{member} 退出了群聊",
  ev_member_removed: "{member} 被移出群聊",
  ev_removed_from_group: "你被移出了 {group}",
  ev_unknown: "通知：{event}",
  language: "English",
  me: "我",
  error: "出错了：{message}",
  myId: "我的 ID：{id}",
  groupSummary: "{count} 人 · 群 ID {id}",
  editNickname: "修改昵称",
  fileSize: "{kib} KB",
};

export type Lang = "en" | "zh";
const tables: Record<Lang, Record<StringKey, string>> = { en, zh };

function initialLang(): Lang {
  const saved = globalThis.localStorage?.getItem("tinyim.lang");
  if (saved === "en" || saved === "zh") return saved;
  return globalThis.navigator?.language?.toLowerCase().startsWith("zh") ? "zh" : "en";
}

let lang: Lang = initialLang();
const listeners = new Set<() => void>();

export function getLang(): Lang {
  return lang;
}

export function setLang(next: Lang): void {
  lang = next;
  globalThis.localStorage?.setItem("tinyim.lang", next);
  document.documentElement.lang = next === "zh" ? "zh-CN" : "en";
  for (const fn of listeners) fn();
}

export function onLangChange(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

globalThis.addEventListener?.("storage", (ev: StorageEvent) => {
  if (ev.key === "tinyim.lang" && (ev.newValue === "en" || ev.newValue === "zh")) setLang(ev.newValue);
});

export function t(key: StringKey, params: Record<string, string | number | bigint> = {}): string {
  return tables[lang][key].replace(/\{(\w+)\}/g, (_, name: string) => String(params[name] ?? ""));
}

export function hasKey(key: string): key is StringKey {
  return key in en;
}

export const STRINGS = tables;

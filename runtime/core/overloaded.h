// Overloaded{lambdas...}: one callable made of several, for std::visit over a
// variant, each lambda taking the alternatives it handles.
#pragma once

namespace mosix {

template <typename... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <typename... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

}  // namespace mosix
